package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// exitsBy reads herd_worker_exits_total{reason} from the master's /metrics.
func (p *proc) exitsBy(reason string) float64 {
	v, _ := value(p.scrape(), "herd_worker_exits_total", map[string]string{"reason": reason})
	return v
}

// recycledUnderLoad runs hello with args under load until at least n
// workers have exited for reason, then checks that no request failed,
// every request is counted exactly once and no exit was a crash. With
// churn, workers are replaced so often that both slots are seldom ready
// at once: the flowing load is then the sign of readiness.
func recycledUnderLoad(t *testing.T, reason string, n float64, churn bool, args ...string) {
	p := startHello(t, append([]string{"-workers", "2"}, args...)...)
	if !churn {
		p.waitReady(2)
	}
	l := startLoad(t, p.app, "/hello", 8, 2*time.Minute)
	l.waitFor(t, 200)
	testutil.Eventually(t, 90*time.Second, func() error {
		if got := p.exitsBy(reason); got < n {
			return fmt.Errorf("%v workers replaced for %s, want %v", got, reason, n)
		}
		return nil
	})
	l.waitFor(t, 100)
	ok := l.check(t)
	p.checkCountEquals(t, ok)
	for _, r := range []string{"crashed", "boot-failed", "timeout"} {
		if got := p.exitsBy(r); got != 0 {
			t.Errorf("herd_worker_exits_total{reason=%q} = %v, want 0", r, got)
		}
	}
	t.Logf("%v workers replaced for %s under load: %d requests ok, 0 failed, all counted", p.exitsBy(reason), reason, ok)
}

func TestWorkersRecycledByAgeUnderLoad(t *testing.T) {
	recycledUnderLoad(t, "age", 8, false, "-max-worker-age", "2s", "-max-worker-age-jitter", "500ms")
}

func TestWorkersRecycledByMemoryUnderLoad(t *testing.T) {
	// Every worker is above 1 MiB resident: each is replaced at its first
	// heartbeat after it is ready, over and over, without a crash or a
	// failed request.
	recycledUnderLoad(t, "rss", 4, true, "-max-worker-rss", "1MiB")
}

func TestStoppedWorkerReplacedAndLogged(t *testing.T) {
	p := startHello(t, "-workers", "2", "-timeout", "2s")
	ws := p.waitReady(2)
	victim := ws[0]
	syscall.Kill(victim.PID, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(victim.PID, syscall.SIGKILL) })
	// A stopped process cannot print its stacks: the log says so, naming it.
	line := p.waitLog(t, "cannot print its goroutine stacks", 20*time.Second)
	if logField(line, "worker") != fmt.Sprint(victim.Slot) || logField(line, "pid") != fmt.Sprint(victim.PID) {
		t.Errorf("timeout line does not name worker %d pid %d: %s", victim.Slot, victim.PID, line)
	}
	p.waitWorkers(15*time.Second, "the stopped worker is replaced", func(ws []workerInfo) bool {
		now := readyPIDs(ws)
		return len(now) == 2 && !now[victim.PID]
	})
}

func TestLeftoversOfADeadWorkerAreRemoved(t *testing.T) {
	p := startHello(t, "-workers", "1")
	w := p.waitReady(1)[0]
	// What a worker killed while making a file, or one that moved a corrupt
	// file aside, leaves behind; and one of another id, which must stay.
	mine := []string{"." + "counter_" + w.ID + ".db.tmp-12345", "counter_" + w.ID + ".db.corrupt-1700000000"}
	other := ".counter_9z.db.tmp-1"
	for _, name := range append(mine, other) {
		if err := os.WriteFile(filepath.Join(p.dir, name), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	syscall.Kill(w.PID, syscall.SIGKILL)
	p.waitWorkers(15*time.Second, "the killed worker is replaced", func(ws []workerInfo) bool {
		return len(readyPIDs(ws)) == 1 && !readyPIDs(ws)[w.PID]
	})
	for _, name := range mine {
		if _, err := os.Stat(filepath.Join(p.dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after its worker died (%v)", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(p.dir, other)); err != nil {
		t.Errorf("%s, another worker's, was removed: %v", other, err)
	}
}
