package prefork_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// A reload with a canary replaces one slot first and judges it for a window: a bad build is
// rolled back to the executable the other workers run (the one on disk is the bad build by
// then), a good one is rolled out.

// buildMark ends a "build" of the test binary: a copy with a behaviour appended after the
// ELF data, which the loader ignores. The worker that runs it reads its own executable.
const buildMark = "\nHERDTESTBUILD:"

// testBuild returns the behaviour makeBuild appended to this process's executable, or "".
func testBuild() string {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	n := min(fi.Size(), 256)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-n); err != nil {
		return ""
	}
	i := bytes.LastIndex(buf, []byte(buildMark))
	if i < 0 {
		return ""
	}
	return string(buf[i+len(buildMark):])
}

// makeBuild puts at path (by a rename, as a deployment does) a copy of the test binary
// whose workers behave as behavior says, and returns a second name of it (a hard link) to
// recognise it by after path was replaced. A child process writes the copy: a file this
// process held open for writing would be inherited by a worker forked meanwhile, and an exec
// of it would fail with ETXTBSY.
func makeBuild(t *testing.T, path, behavior string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	keep := path + "." + behavior
	cmd := exec.Command("sh", "-c", `cp "$1" "$2" && printf '%s' "$3" >> "$2" && ln "$2" "$4" && mv "$2" "$5"`,
		"sh", exe, path+".tmp", buildMark+behavior, keep, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making build %s: %v\n%s", behavior, err, out)
	}
	return keep
}

// runsBuild reports whether process pid runs the executable file build.
func runsBuild(pid int, build string) bool {
	a, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	b, err := os.Stat(build)
	return err == nil && os.SameFile(a, b)
}

type judgeCall struct {
	canary prefork.WorkerInfo
	others []prefork.WorkerInfo
	at     time.Time
	ok     bool
}

// loadJudge judges a canary by the test's load: bad if requests failed during its window.
type loadJudge struct {
	mu     sync.Mutex
	ld     *load
	failed int // when the window began
	starts []judgeCall
	judges []judgeCall
}

func (j *loadJudge) setLoad(ld *load) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ld = ld
}

func (j *loadJudge) Start(canary prefork.WorkerInfo, others []prefork.WorkerInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, j.failed = j.ld.counts()
	j.starts = append(j.starts, judgeCall{canary: canary, others: others, at: time.Now()})
}

func (j *loadJudge) Judge(canary prefork.WorkerInfo, others []prefork.WorkerInfo) (bool, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, failed := j.ld.counts()
	n := failed - j.failed
	j.judges = append(j.judges, judgeCall{canary: canary, others: others, at: time.Now(), ok: n == 0})
	if n > 0 {
		return false, fmt.Sprintf("%d requests failed in the window", n)
	}
	return true, "no request failed in the window"
}

func (j *loadJudge) calls() (starts, judges []judgeCall) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]judgeCall(nil), j.starts...), append([]judgeCall(nil), j.judges...)
}

// counts returns the requests of the load that succeeded and failed so far.
func (l *load) counts() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.ok.Load()), len(l.errs)
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

func TestCanaryReload(t *testing.T) {
	t.Parallel()
	const window = 2 * time.Second
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	v1 := makeBuild(t, app, "v1")
	j := &loadJudge{}
	tm := startMaster(t, prefork.Config{Workers: 2, Path: app, ReloadCanary: window, CanaryJudge: j, BootTimeout: 20 * time.Second}, "")
	before := tm.waitReady(t, 2, 20*time.Second)
	for _, w := range before {
		if !runsBuild(w.PID, v1) {
			t.Fatalf("worker %s does not run the first build", w.ID)
		}
	}
	ld := startLoad(tm.Addrs()[0].String(), 2)
	defer ld.halt()
	j.setLoad(ld)
	testutil.EventuallyTrue(t, 20*time.Second, "requests served", func() bool { ok, _ := ld.counts(); return ok >= 50 })

	// A bad build: every request its workers serve fails.
	makeBuild(t, app, "fail-requests")
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 40*time.Second, "the reload rolled back", func() bool { return tm.Counters().ReloadsRolledBack == 1 })
	var now []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 20*time.Second, "the canary gone and its slot served by the first build again", func() bool {
		now = tm.readyWorkers(2)
		return now != nil && now[0].PID != before[0].PID
	})
	if now[1].PID != before[1].PID {
		t.Errorf("slot 1 has worker %d, want %d: only the canary's slot may change", now[1].PID, before[1].PID)
	}
	for _, w := range now {
		if !runsBuild(w.PID, v1) {
			t.Errorf("after the rollback worker %s (pid %d) does not run the first build", w.ID, w.PID)
		}
	}
	starts, judges := j.calls()
	if len(starts) != 1 || len(judges) != 1 {
		t.Fatalf("judge started %d and judged %d times, want once each", len(starts), len(judges))
	}
	canary := starts[0].canary
	if canary.Slot != 0 || canary.State != prefork.StateReady || len(starts[0].others) != 1 || starts[0].others[0].PID != before[1].PID {
		t.Errorf("judge started with canary %+v and others %+v, want slot 0 against slot 1's old worker", canary, starts[0].others)
	}
	// The window runs from the step that saw the canary ready, which comes
	// after its Ready time and before the judge's Start is called.
	if judges[0].canary.PID != canary.PID || judges[0].ok || judges[0].at.Sub(canary.Ready) < window {
		t.Errorf("judged %+v %v after the canary was ready, want a bad verdict on pid %d after the %v window", judges[0], judges[0].at.Sub(canary.Ready), canary.PID, window)
	}
	var rolledBack []prefork.WorkerExit
	for _, e := range tm.exitsSnapshot() {
		if e.Reason == prefork.ExitRolledBack {
			rolledBack = append(rolledBack, e)
		}
	}
	if len(rolledBack) != 1 || rolledBack[0].PID != canary.PID || rolledBack[0].Err() != nil {
		t.Errorf("rolled-back exits %+v, want the canary's (pid %d), clean", rolledBack, canary.PID)
	}
	if !strings.Contains(tm.logs.String(), `msg="reload rolled back`) || !strings.Contains(tm.logs.String(), "requests failed in the window") {
		t.Error("the master did not log the rollback and the judge's reason")
	}
	// The canary is gone: no request fails any more.
	ok, failed := ld.counts()
	if failed == 0 {
		t.Fatal("no request failed: the canary was never tried")
	}
	testutil.EventuallyTrue(t, 20*time.Second, "more requests served", func() bool { n, _ := ld.counts(); return n >= ok+200 })
	if _, f := ld.counts(); f != failed {
		t.Errorf("%d more requests failed after the rollback", f-failed)
	}
	t.Logf("bad build: %d requests failed while the canary served its %v window", failed, window)

	// A good build: rolled out, the other slot only after the canary's window.
	v2 := makeBuild(t, app, "v2")
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 40*time.Second, "the reload rolled out", func() bool { return tm.Counters().ReloadsOK == 1 })
	var after []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 20*time.Second, "every worker replaced", func() bool {
		after = tm.readyWorkers(2)
		return after != nil && after[0].PID != now[0].PID && after[1].PID != now[1].PID
	})
	for _, w := range after {
		if !runsBuild(w.PID, v2) {
			t.Errorf("after the rollout worker %s (pid %d) does not run the second build", w.ID, w.PID)
		}
	}
	starts, judges = j.calls()
	if len(starts) != 2 || len(judges) != 2 || !judges[1].ok || judges[1].canary.PID != after[0].PID {
		t.Fatalf("judge calls %+v %+v, want a second canary in slot 0, judged good", starts, judges)
	}
	// As above, the window starts no earlier than the canary's Ready time; the
	// judge's Start call can come later than the master's window start.
	if end := starts[1].canary.Ready.Add(window); after[1].Started.Before(end) {
		t.Errorf("slot 1 replaced at %v, before the end of the canary's window (%v)", after[1].Started, end)
	}
	if _, f := ld.counts(); f != failed {
		t.Errorf("%d requests failed during the good rollout", f-failed)
	}
	if c := tm.Counters(); c.ReloadsRolledBack != 1 || c.ReloadsAborted != 0 {
		t.Errorf("counters %+v, want one rollback, no abort", c)
	}
}

func TestCanaryThatFailsIsRolledBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		build  string
		reason prefork.ExitReason
		log    string
	}{
		{"crash-after-ready", prefork.ExitCrashed, "exited before the end of its window"},
		{"hang-after-ready", prefork.ExitTimeout, "stopped sending heartbeats before the end of its window"},
	} {
		t.Run(tc.build, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			app := filepath.Join(dir, "app")
			v1 := makeBuild(t, app, "v1")
			// No judge: a canary that serves its window passes, one that exits or hangs
			// does not.
			tm := startMaster(t, prefork.Config{Workers: 2, Path: app, ReloadCanary: 20 * time.Second,
				Timeout: 2 * time.Second, BootTimeout: 20 * time.Second, CrashLimit: -1}, "")
			before := tm.waitReady(t, 2, 20*time.Second)
			makeBuild(t, app, tc.build)
			tm.sig.Send(syscall.SIGHUP)
			testutil.EventuallyTrue(t, 40*time.Second, "the reload rolled back", func() bool { return tm.Counters().ReloadsRolledBack == 1 })
			var now []prefork.WorkerInfo
			testutil.EventuallyTrue(t, 20*time.Second, "slot 0 served by the first build again", func() bool {
				now = tm.readyWorkers(2)
				return now != nil && now[0].PID != before[0].PID
			})
			if now[1].PID != before[1].PID || !runsBuild(now[0].PID, v1) || !runsBuild(now[1].PID, v1) {
				t.Errorf("workers after the rollback %+v, want slot 1 untouched and both running the first build", now)
			}
			failed := 0
			for _, e := range tm.exitsSnapshot() {
				if !e.Reason.Planned() {
					failed++
					if e.Reason != tc.reason {
						t.Errorf("exit %+v, want %s", e, tc.reason)
					}
				}
			}
			if failed != 1 {
				t.Errorf("%d unplanned exits, want the one canary's: the failing build must not be started again", failed)
			}
			if !strings.Contains(tm.logs.String(), tc.log) {
				t.Errorf("the rollback's log line does not say %q", tc.log)
			}
			if c := tm.Counters(); c.ReloadsOK != 0 || c.ReloadsAborted != 0 {
				t.Errorf("counters %+v, want only the rollback", c)
			}
		})
	}
}

// recordingJudge passes every canary and records the calls.
type recordingJudge struct {
	mu             sync.Mutex
	starts, judges []prefork.WorkerInfo
}

func (j *recordingJudge) Start(canary prefork.WorkerInfo, _ []prefork.WorkerInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.starts = append(j.starts, canary)
}

func (j *recordingJudge) Judge(canary prefork.WorkerInfo, _ []prefork.WorkerInfo) (bool, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.judges = append(j.judges, canary)
	return true, "passes everything"
}

func (j *recordingJudge) counts() (starts, judges int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.starts), len(j.judges)
}

// A reload during a canary's window supersedes it: the newer build becomes the canary,
// with a window of its own, and is the one rolled out.
func TestReloadDuringCanaryWindow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	makeBuild(t, app, "v1")
	j := &recordingJudge{}
	tm := startMaster(t, prefork.Config{Workers: 2, Path: app, ReloadCanary: 4 * time.Second, CanaryJudge: j, BootTimeout: 20 * time.Second}, "")
	before := tm.waitReady(t, 2, 20*time.Second)
	makeBuild(t, app, "fail-requests")
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 30*time.Second, "the first canary ready", func() bool { n, _ := j.counts(); return n == 1 })
	v3 := makeBuild(t, app, "v3")
	tm.sig.Send(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 40*time.Second, "the reload rolled out", func() bool { return tm.Counters().ReloadsOK == 1 })
	var now []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 20*time.Second, "both workers replaced", func() bool {
		now = tm.readyWorkers(2)
		return now != nil && now[0].PID != before[0].PID && now[1].PID != before[1].PID
	})
	for _, w := range now {
		if !runsBuild(w.PID, v3) {
			t.Errorf("worker %s (pid %d) does not run the last build", w.ID, w.PID)
		}
	}
	starts, judges := j.counts()
	j.mu.Lock()
	first := j.starts[0]
	j.mu.Unlock()
	if starts != 2 || judges != 1 {
		t.Errorf("judge started %d and judged %d times, want 2 canaries and one verdict (the first was superseded)", starts, judges)
	}
	for _, e := range tm.exitsSnapshot() {
		if e.PID == first.PID && (e.Reason != prefork.ExitReloaded || e.Err() != nil) {
			t.Errorf("superseded canary's exit %+v, want a clean reload exit", e)
		}
	}
	if c := tm.Counters(); c.ReloadsRolledBack != 0 || c.ReloadsAborted != 0 {
		t.Errorf("counters %+v, want one reload, ok", c)
	}
}

func TestNewMasterRejectsBadCanary(t *testing.T) {
	t.Parallel()
	judge := prefork.CanaryJudgeFunc(func(prefork.WorkerInfo, []prefork.WorkerInfo) (bool, string) { return true, "" })
	for _, tc := range []struct {
		name string
		cfg  prefork.Config
		want string
	}{
		{"negative window", prefork.Config{ReloadCanary: -time.Second}, "reload canary must not be negative"},
		{"judge alone", prefork.Config{CanaryJudge: judge}, "a canary judge needs a reload canary window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Workers, tc.cfg.Addrs = 1, []string{"127.0.0.1:0"}
			m, err := prefork.NewMaster(tc.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("NewMaster accepted %+v", tc.cfg)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "prefork: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line with %q", msg, tc.want)
			}
		})
	}
}

// A reload (SIGHUP) first replaces one slot and watches it for a minute; the judge then
// compares it with the old workers. (Compile-only: it forks.)
func ExampleConfig_canary() {
	m, err := prefork.NewMaster(prefork.Config{
		Workers:      4,
		Addrs:        []string{"127.0.0.1:8080"},
		ReloadCanary: time.Minute,
		CanaryJudge: prefork.CanaryJudgeFunc(func(canary prefork.WorkerInfo, others []prefork.WorkerInfo) (bool, string) {
			// Compare what the canary's own metrics say with the others' (see the
			// server package for a judge of error ratio and latency).
			return canary.QueueLength <= 10, fmt.Sprintf("canary queue %d", canary.QueueLength)
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	m.Run(context.Background())
}
