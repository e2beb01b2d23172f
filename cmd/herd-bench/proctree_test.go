package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// statLine builds a /proc/PID/stat line with the given fields (the rest zero).
func statLine(pid int, comm string, state byte, ppid int, utime, stime, cutime, cstime, start uint64) string {
	// Fields 3..52 as in proc(5); 14-17 CPU times, 22 starttime.
	f := make([]string, 50)
	for i := range f {
		f[i] = "0"
	}
	set := func(n int, v string) { f[n-3] = v }
	set(3, string(state))
	set(4, strconv.Itoa(ppid))
	set(14, strconv.FormatUint(utime, 10))
	set(15, strconv.FormatUint(stime, 10))
	set(16, strconv.FormatUint(cutime, 10))
	set(17, strconv.FormatUint(cstime, 10))
	set(22, strconv.FormatUint(start, 10))
	line := fmt.Sprintf("%d (%s)", pid, comm)
	for _, v := range f {
		line += " " + v
	}
	return line + "\n"
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want procStat
	}{
		{"plain", statLine(42, "hello", 'S', 1, 100, 50, 7, 3, 9999),
			procStat{PID: 42, PPID: 1, State: 'S', Ticks: 160, ChildTicks: 10, Start: 9999}},
		{"comm with spaces and parens", statLine(7, "a (b) c)", 'R', 42, 1, 2, 0, 0, 5),
			procStat{PID: 7, PPID: 42, State: 'R', Ticks: 3, Start: 5}},
		{"zombie", statLine(8, "x", 'Z', 42, 0, 0, 0, 0, 6),
			procStat{PID: 8, PPID: 42, State: 'Z', Start: 6}},
		// A real line from this kernel's proc(5) layout.
		{"real", "12246 (gunicorn) S 12240 12240 12240 0 -1 4194560 13519 0 0 0 94 19 0 0 20 0 1 0 94632 46092288 7166 18446744073709551615 1 1 0 0 0 0 0 16781312 17414 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			procStat{PID: 12246, PPID: 12240, State: 'S', Ticks: 113, Start: 94632}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "42 hello S 1", "x (y) S 1 2 3", "42 (hello) S 1 2 3"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

// fakeProc writes a /proc-like tree: pid -> stat line.
func fakeProc(t *testing.T, stats map[int]string, cpuLine string) procFS {
	t.Helper()
	root := t.TempDir()
	for pid, line := range stats {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "self"), 0o755) // non-numeric entries are skipped
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte(cpuLine), 0o644); err != nil {
		t.Fatal(err)
	}
	return procFS{root: root}
}

func TestProcTreeAndCPU(t *testing.T) {
	before := fakeProc(t, map[int]string{
		1:  statLine(1, "init", 'S', 0, 5, 5, 0, 0, 1),
		10: statLine(10, "master", 'S', 1, 10, 10, 0, 0, 100),
		11: statLine(11, "worker a", 'R', 10, 100, 50, 0, 0, 110),
		12: statLine(12, "worker b", 'R', 10, 200, 20, 0, 0, 111),
		13: statLine(13, "grandchild", 'S', 11, 1, 1, 0, 0, 120),
		20: statLine(20, "unrelated", 'R', 1, 999, 999, 0, 0, 50),
	}, "cpu  100 0 50 1000 0 0 0 0 0 0\n")
	tb, err := before.tree(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb) != 4 || tb[20].PID != 0 || tb[13].PID != 13 {
		t.Fatalf("tree(10) = %v, want pids 10, 11, 12, 13", tb)
	}
	after := fakeProc(t, map[int]string{
		10: statLine(10, "master", 'S', 1, 10, 12, 0, 0, 100),     // +2
		11: statLine(11, "worker a", 'R', 10, 150, 70, 0, 0, 110), // +70
		12: statLine(12, "worker b", 'R', 10, 5, 5, 0, 0, 300),    // pid reused since: counts whole (10)
		14: statLine(14, "new", 'S', 10, 3, 0, 0, 0, 400),         // new: counts whole (3)
		20: statLine(20, "unrelated", 'R', 1, 5000, 5000, 0, 0, 50),
	}, "cpu  300 0 150 1000 0 0 0 0 0 0\n")
	ta, err := after.tree(10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cpuBetween(tb, ta), 850*time.Millisecond; got != want {
		t.Errorf("cpuBetween = %v, want %v", got, want)
	}
	if _, err := after.tree(99); err == nil {
		t.Error("tree of a missing pid: no error")
	}
	if !after.alive(ta[11]) {
		t.Error("alive(running worker) = false")
	}
	if after.alive(tb[12]) {
		t.Error("alive(process whose pid was reused) = true")
	}
	if after.alive(tb[13]) {
		t.Error("alive(vanished process) = true")
	}
	zombie := fakeProc(t, map[int]string{11: statLine(11, "worker a", 'Z', 10, 0, 0, 0, 0, 110)}, "cpu 0 0 0 0 0 0 0 0\n")
	if zombie.alive(tb[11]) {
		t.Error("alive(zombie) = true")
	}
	b0, err := before.busy()
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := after.busy()
	if b1-b0 != 3*time.Second {
		t.Errorf("busy delta = %v, want 3s", b1-b0)
	}
}

// writeSchedstat gives pid of a fake tree threads with these CPU times.
func writeSchedstat(t *testing.T, p procFS, pid int, threads ...time.Duration) {
	t.Helper()
	for i, d := range threads {
		dir := filepath.Join(p.root, strconv.Itoa(pid), "task", strconv.Itoa(pid+i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "schedstat"), fmt.Appendf(nil, "%d 12345 678\n", d.Nanoseconds()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The CPU time comes from the threads' schedstat, to the nanosecond, where
// both snapshots have it; from the ticks of /proc/PID/stat otherwise; a
// reaped child's time from its parent's cutime and cstime.
func TestProcTreeCPUFromSchedstat(t *testing.T) {
	before := fakeProc(t, map[int]string{
		10: statLine(10, "master", 'S', 1, 10, 10, 0, 0, 100),
		11: statLine(11, "worker", 'R', 10, 100, 50, 0, 0, 110),
		12: statLine(12, "no schedstat", 'R', 10, 7, 0, 0, 0, 111),
	}, "cpu 0 0 0 0 0 0 0 0\n")
	writeSchedstat(t, before, 10, 203_000_001*time.Nanosecond, 1_000_000*time.Nanosecond)
	writeSchedstat(t, before, 11, 1_000_000_000*time.Nanosecond, 499_999_999*time.Nanosecond, 3*time.Millisecond)
	after := fakeProc(t, map[int]string{
		10: statLine(10, "master", 'S', 1, 10, 11, 2, 1, 100), // a child reaped since: 3 ticks
		11: statLine(11, "worker", 'R', 10, 130, 70, 0, 0, 110),
		12: statLine(12, "no schedstat", 'R', 10, 9, 0, 0, 0, 111), // +2 ticks
		13: statLine(13, "new worker", 'R', 10, 1, 0, 0, 0, 200),   // new: all its schedstat
	}, "cpu 0 0 0 0 0 0 0 0\n")
	writeSchedstat(t, after, 10, 204_500_001*time.Nanosecond, 1_000_000*time.Nanosecond)                                // +1.5 ms
	writeSchedstat(t, after, 11, 1_400_000_000*time.Nanosecond, 599_999_999*time.Nanosecond, 3_000_123*time.Nanosecond) // +500.000123 ms
	writeSchedstat(t, after, 13, 4_200_000*time.Nanosecond)
	tb, err := before.tree(10)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := after.tree(10)
	if err != nil {
		t.Fatal(err)
	}
	if tb[10].Exec != 204_000_001*time.Nanosecond || tb[12].Exec != 0 {
		t.Errorf("Exec of the master %v (want 204.000001ms), of a process without schedstat %v (want 0)", tb[10].Exec, tb[12].Exec)
	}
	want := 1500*time.Microsecond + 30*time.Millisecond + // master: threads, reaped child
		500_000_123*time.Nanosecond + // worker
		20*time.Millisecond + // no schedstat: ticks
		4_200_000*time.Nanosecond // new worker
	if got := cpuBetween(tb, ta); got != want {
		t.Errorf("cpuBetween = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "12 34", "x 1 2"} {
		if _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q): no error", bad)
		}
	}
}

// On this machine's /proc, the test process's threads' CPU time agrees with
// the kernel's rusage of the process (to a few ms: rusage is read around it).
func TestExecOfThisProcess(t *testing.T) {
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++ // some CPU time of our own
	}
	_ = x
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	tree, err := procFS{root: "/proc"}.tree(os.Getpid())
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	if err != nil {
		t.Fatal(err)
	}
	cpu := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	got := tree[os.Getpid()].Exec
	if slack := 5 * time.Millisecond; got < cpu(r0)-slack || got > cpu(r1)+slack {
		t.Errorf("threads' schedstat %v, rusage %v .. %v", got, cpu(r0), cpu(r1))
	}
}

func TestParseBusy(t *testing.T) {
	got, err := parseBusy([]byte("cpu  59070 7 35716 116983 893 11 996 2 5 0\ncpu0 1 2 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 59070+7+35716+11+996+2 ticks.
	if want := 95802 * 10 * time.Millisecond; got != want {
		t.Errorf("parseBusy = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5 6 7 8 9", "cpu 1 2"} {
		if _, err := parseBusy([]byte(bad)); err == nil {
			t.Errorf("parseBusy(%q): no error", bad)
		}
	}
}
