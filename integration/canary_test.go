package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/mmapstore"
)

// Canary reloads through the real binary: a HUP to a binary whose /hello answers 500 is
// rolled back after the canary's window, with no failure but the canary's own, and the
// canary's slot runs the old executable again although the file on disk is the bad build;
// a HUP to a good binary rolls out.

// buildCanaryApp builds integration/testdata/canary, whose /hello answers status, to path.
func buildCanaryApp(t *testing.T, path string, status int) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", path, "-ldflags", "-X main.helloStatus="+strconv.Itoa(status),
		"github.com/herdhttp/herd/integration/testdata/canary")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the canary app: %v\n%s", err, out)
	}
}

// deployBuild puts build at path by a rename, as a deployment does, keeping build's own name.
func deployBuild(t *testing.T, build, path string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.Link(build, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
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

// startCanaryApp is startHello for another herd binary.
func startCanaryApp(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	args = append([]string{"-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", t.TempDir()}, args...)
	p := &proc{t: t, rawProc: startRaw(t, exec.Command(bin, args...))}
	line := p.waitLine(t, 20*time.Second, "master started")
	p.app = "http://" + bindRE.FindStringSubmatch(line)[1]
	p.admin = "http://" + adminRE.FindStringSubmatch(line)[1]
	p.dir = p.runDir()
	return p
}

// reloadsTotal returns herd_reloads_total{result}.
func (p *proc) reloadsTotal(result string) float64 {
	v, _ := value(p.scrape(), "herd_reloads_total", map[string]string{"result": result})
	return v
}

// workerFileCount sums the counter samples of family sample with label code in the worker
// file id's counter file.
func workerFileCount(t *testing.T, dir, id, sample, code string) float64 {
	t.Helper()
	fs, err := mmapstore.ReadFile(filepath.Join(dir, mmapstore.FileName("counter", "", id)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, s := range fs.Samples {
		if s.Key.Sample != sample {
			continue
		}
		for _, l := range s.Key.Labels {
			if l.Name == "code" && l.Value == code {
				n += s.Value
			}
		}
	}
	return n
}

var canaryReadyRE = regexp.MustCompile(`msg="canary ready[^"]*" worker=(\d+) id=(\w+) pid=(\d+)`)

func TestCanaryReloadRollsBackABadBinaryAndRollsOutAGoodOne(t *testing.T) {
	const window = 3 * time.Second
	dir := t.TempDir()
	good, bad, good2 := filepath.Join(dir, "good"), filepath.Join(dir, "bad"), filepath.Join(dir, "good2")
	buildCanaryApp(t, good, 200)
	buildCanaryApp(t, bad, 500)
	if out, err := exec.Command("cp", good, good2).CombinedOutput(); err != nil { // another file, the same build
		t.Fatalf("cp: %v\n%s", err, out)
	}
	app := filepath.Join(dir, "app")
	deployBuild(t, good, app)
	p := startCanaryApp(t, app, "-workers", "2", "-reload-canary", window.String())
	before := p.waitReady(2)
	l := startLoad(t, p.app, "/hello", 4, 2*time.Minute)
	l.waitFor(t, 200)

	// The bad build: rolled back.
	deployBuild(t, bad, app)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 60*time.Second, func() error {
		if v := p.reloadsTotal("rolled_back"); v != 1 {
			return fmt.Errorf("herd_reloads_total{result=\"rolled_back\"} = %v", v)
		}
		return nil
	})
	m := canaryReadyRE.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no canary in the log:\n%s", p.log.String())
	}
	canaryID, canaryPID := m[2], m[3]
	after := p.waitWorkers(20*time.Second, "the canary gone, its slot served by the good build", func(ws []workerInfo) bool {
		return len(ws) == 2 && len(readyPIDs(ws)) == 2 && ws[0].PID != before[0].PID && strconv.Itoa(ws[0].PID) != canaryPID
	})
	if m[1] != "0" || after[1].PID != before[1].PID {
		t.Errorf("canary in slot %s, slot 1 worker %d (was %d): only slot 0 may have changed", m[1], after[1].PID, before[1].PID)
	}
	for _, w := range after {
		if !runsBuild(w.PID, good) {
			t.Errorf("worker %s (pid %d) does not run the good build after the rollback", w.ID, w.PID)
		}
	}
	line := p.waitLog(t, "reload rolled back", 5*time.Second)
	if !strings.Contains(line, "worse 5xx") || !strings.Contains(line, "id="+canaryID) {
		t.Errorf("the rollback's log line does not name the canary and the comparison: %s", line)
	}
	// Every failure was the canary's own: its file counts exactly the 500s clients saw.
	failed := l.failed.Load()
	canary500 := workerFileCount(t, p.dir, canaryID, "http_requests_total", "500")
	if failed == 0 || float64(failed) != canary500 {
		t.Errorf("clients saw %d failures, the canary answered %v with 500: want the same, and some", failed, canary500)
	}
	canary200 := workerFileCount(t, p.dir, canaryID, "http_requests_total", "200")
	l.waitFor(t, 300)
	if f := l.failed.Load(); f != failed {
		t.Errorf("%d requests failed after the rollback", f-failed)
	}
	t.Logf("bad build: the canary answered %v requests with 500 (and %v with 200) in its %v window; %d failures in all, %d ok",
		canary500, canary200, window, failed, l.ok.Load())

	// A good build: rolled out.
	deployBuild(t, good2, app)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 60*time.Second, func() error {
		if v := p.reloadsTotal("ok"); v != 1 {
			return fmt.Errorf("herd_reloads_total{result=\"ok\"} = %v", v)
		}
		return nil
	})
	rolled := p.waitWorkers(20*time.Second, "both workers replaced", func(ws []workerInfo) bool {
		return len(ws) == 2 && len(readyPIDs(ws)) == 2 && ws[0].PID != after[0].PID && ws[1].PID != after[1].PID
	})
	for _, w := range rolled {
		if !runsBuild(w.PID, good2) {
			t.Errorf("worker %s (pid %d) does not run the new good build", w.ID, w.PID)
		}
	}
	l.waitFor(t, 200)
	l.stop()
	if f := l.failed.Load(); f != failed {
		t.Errorf("%d requests failed during the good rollout", f-failed)
	}
	if p.reloadsTotal("rolled_back") != 1 || p.reloadsTotal("aborted") != 0 {
		t.Error("herd_reloads_total changed for other results")
	}
	p.checkCountEquals(t, l.ok.Load())
}
