package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, which
// Linux fixes at 100 on every architecture Go supports).
const userHZ = 100

// procStat is the part of /proc/PID/stat that herd-bench uses, and the
// process's CPU time to the nanosecond when the kernel keeps it.
type procStat struct {
	PID        int
	PPID       int
	State      byte   // R, S, D, Z, ...
	Ticks      uint64 // utime+stime+cutime+cstime: own CPU time plus that of reaped children
	ChildTicks uint64 // cutime+cstime: the reaped children's part of Ticks
	Start      uint64 // starttime in ticks since boot: tells a reused pid apart
	// Exec is the CPU time of the process's threads, the sum of the first
	// field (ns on the CPU) of every /proc/PID/task/TID/schedstat, or 0
	// when unknown (a kernel without schedstat; then Ticks is used).
	// /proc/PID/schedstat itself is the main thread's alone. A thread
	// that exits takes its time with it: Go's runtime keeps its threads.
	Exec time.Duration
}

// parseProcStat reads one /proc/PID/stat line. The command name is in
// parentheses and may itself contain spaces and parentheses: fields are
// counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	var s procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("proc stat %q: no command name", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("proc stat: pid: %w", err)
	}
	s.PID = pid
	// Fields after the name, numbered from 3 (state) as in proc(5).
	f := bytes.Fields(b[closing+1:])
	const need = 22 - 2 // up to field 22, starttime
	if len(f) < need {
		return s, fmt.Errorf("proc stat of %d: %d fields, want at least %d", pid, len(f)+2, need+2)
	}
	field := func(n int) (uint64, error) {
		v, err := strconv.ParseUint(string(f[n-3]), 10, 64)
		if err != nil {
			// cutime and cstime are signed in the kernel's type; never negative in practice.
			iv, ierr := strconv.ParseInt(string(f[n-3]), 10, 64)
			if ierr != nil || iv < 0 {
				return 0, fmt.Errorf("proc stat of %d: field %d: %w", pid, n, err)
			}
			v = uint64(iv)
		}
		return v, nil
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("proc stat of %d: state %q", pid, f[0])
	}
	s.State = f[0][0]
	ppid, err := field(4)
	if err != nil {
		return s, err
	}
	s.PPID = int(ppid)
	for _, n := range []int{14, 15, 16, 17} { // utime stime cutime cstime
		v, err := field(n)
		if err != nil {
			return s, err
		}
		s.Ticks += v
		if n >= 16 {
			s.ChildTicks += v
		}
	}
	if s.Start, err = field(22); err != nil {
		return s, err
	}
	return s, nil
}

// procFS reads process information under a proc mount (normally /proc;
// tests point it at a fake tree).
type procFS struct {
	root string
}

// stat returns one process's stat.
func (p procFS) stat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// exec is the CPU time of pid's threads, summed over their schedstat files;
// 0 when one cannot be read (then the caller falls back to ticks).
func (p procFS) exec(pid int) time.Duration {
	files, err := filepath.Glob(filepath.Join(p.root, strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil || len(files) == 0 {
		return 0
	}
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0
		}
		sum += ns
	}
	return sum
}

// parseSchedstat reads the first field of a schedstat line: the time the
// task has spent on a CPU, in nanoseconds.
func parseSchedstat(b []byte) (time.Duration, error) {
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, fmt.Errorf("schedstat %q: want 3 fields", b)
	}
	ns, err := strconv.ParseUint(string(f[0]), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("schedstat %q: %w", b, err)
	}
	return time.Duration(ns), nil
}

// tree returns root and all its live descendants, by pid, each with its
// threads' CPU time (Exec). Processes that vanish while it scans are left
// out.
func (p procFS) tree(root int) (map[int]procStat, error) {
	ents, err := os.ReadDir(p.root)
	if err != nil {
		return nil, err
	}
	children := map[int][]procStat{}
	var rootStat *procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := p.stat(pid)
		if err != nil {
			continue // exited meanwhile, or not ours to read
		}
		if pid == root {
			rootStat = &s
		}
		children[s.PPID] = append(children[s.PPID], s)
	}
	if rootStat == nil {
		return nil, fmt.Errorf("process %d: not found under %s", root, p.root)
	}
	out := map[int]procStat{root: *rootStat}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if _, seen := out[c.PID]; !seen {
				out[c.PID] = c
				queue = append(queue, c.PID)
			}
		}
	}
	for pid, s := range out {
		s.Exec = p.exec(pid)
		out[pid] = s
	}
	return out, nil
}

// cpuBetween is the CPU time the processes of after used since before: to
// the nanosecond from their threads' schedstat where both snapshots have
// it, else in ticks of 10 ms (a 1 s run of two processes would be off by
// up to 4% that way). A process absent from before (started since) counts
// whole; one absent from after (exited since) is not counted, except
// through its parent's cutime when it was reaped (in ticks).
func cpuBetween(before, after map[int]procStat) time.Duration {
	var cpu time.Duration
	for pid, a := range after {
		b, ok := before[pid]
		if !ok || b.Start != a.Start {
			b = procStat{} // new since before: counts whole
		}
		if a.Exec > 0 && (b.Exec > 0 || b == procStat{}) {
			cpu += max(0, a.Exec-b.Exec) + ticksDelta(b.ChildTicks, a.ChildTicks)
		} else {
			cpu += ticksDelta(b.Ticks, a.Ticks)
		}
	}
	return cpu
}

// ticksDelta is the time between two tick counts, 0 if the count went down.
func ticksDelta(before, after uint64) time.Duration {
	if after <= before {
		return 0
	}
	return time.Duration(after-before) * time.Second / userHZ
}

// alive reports whether the process s still runs: present with the same
// start time and not a zombie (an exited process may linger unreaped).
func (p procFS) alive(s procStat) bool {
	now, err := p.stat(s.PID)
	return err == nil && now.Start == s.Start && now.State != 'Z' && now.State != 'X'
}

// busy returns the CPU time all CPUs spent busy since boot (the first line
// of /proc/stat: user, nice, system, irq, softirq, steal; guest time is part
// of user).
func (p procFS) busy() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(p.root, "stat"))
	if err != nil {
		return 0, err
	}
	return parseBusy(b)
}

func parseBusy(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("proc stat: first line %q is not the cpu total", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: cpu field %d: %w", i, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
