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

// procStat is the part of /proc/PID/stat that herd-bench uses.
type procStat struct {
	PID   int
	PPID  int
	State byte   // R, S, D, Z, ...
	Ticks uint64 // utime+stime+cutime+cstime: own CPU time plus that of reaped children
	Start uint64 // starttime in ticks since boot: tells a reused pid apart
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

// tree returns root and all its live descendants, by pid. Processes that
// vanish while it scans are left out.
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
	return out, nil
}

// cpuBetween is the CPU time the processes of after used since before. A
// process absent from before (started since) counts whole; one absent from
// after (exited since) is not counted, except through its parent's cutime
// when it was reaped.
func cpuBetween(before, after map[int]procStat) time.Duration {
	var ticks uint64
	for pid, a := range after {
		if b, ok := before[pid]; ok && b.Start == a.Start {
			if a.Ticks > b.Ticks {
				ticks += a.Ticks - b.Ticks
			}
			continue
		}
		ticks += a.Ticks
	}
	return time.Duration(ticks) * time.Second / userHZ
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
