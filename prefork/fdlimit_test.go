package prefork_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// Running out of file descriptors is not a crash: the start is retried, and a reserve keeps
// enough descriptors for a replacement when a neighbour fills the master's table.

// A start that fails with EMFILE or ENFILE is retried, at start-up as later, and never
// counts toward the restart limit.
func TestStartWithoutFDsIsRetried(t *testing.T) {
	t.Parallel()
	var failSlot1 atomic.Int32
	failSlot1.Store(3)
	errs := []error{syscall.EMFILE, syscall.ENFILE}
	tm := startMaster(t, prefork.Config{Workers: 2, CrashLimit: 1}, "", func(m *prefork.Master) {
		prefork.SetForkForTest(m, func(c *prefork.ForkCall) error {
			if c.Slot == 1 {
				if n := failSlot1.Add(-1); n >= 0 {
					return errs[n%2]
				}
			}
			return nil
		})
	})
	ws := tm.waitReady(t, 2, 15*time.Second)
	if c := tm.Counters(); c.FDExhausted != 3 {
		t.Errorf("FDExhausted = %d after start-up, want 3", c.FDExhausted)
	}
	// Later, with one crash already counted: CrashLimit 1 would stop the master at the
	// second failure if the retries counted.
	failSlot1.Store(4)
	syscall.Kill(ws[1].PID, syscall.SIGKILL)
	testutil.EventuallyTrue(t, 15*time.Second, "slot 1 replaced", func() bool {
		now := tm.readyWorkers(2)
		return now != nil && now[1].PID != ws[1].PID
	})
	select {
	case err := <-tm.errc:
		t.Fatalf("master stopped: %v", err)
	default:
	}
	if c := tm.Counters(); c.FDExhausted != 7 {
		t.Errorf("FDExhausted = %d, want 7", c.FDExhausted)
	}
	if n := strings.Count(tm.logs.String(), "out of file descriptors"); n < 1 || n > 2 {
		t.Errorf("%d log lines about the missing descriptors, want 1 or 2 (rate-limited)", n)
	}
}

// With the master's descriptor table filled by a neighbour (here: every free descriptor
// taken in the master process, under a low RLIMIT_NOFILE), killed workers are still
// replaced, from the master's reserve.
func TestReplacementsWithFullFDTable(t *testing.T) {
	t.Parallel()
	sm := startSubMaster(t, masterSpec{Workers: 2, NoFile: 64, CrashLimit: 2})
	ws := sm.waitReady(t, 2, 15*time.Second)
	resp, err := http.Get("http://" + sm.admin + "/fill")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "too many open files") {
		t.Fatalf("fill: %q, want the table full (EMFILE)", body)
	}
	t.Logf("fill: %s", body)
	readyRE := regexp.MustCompile(`msg="worker ready" worker=\d+ id=\w+ pid=(\d+)`)
	ready := func() int { return len(readyRE.FindAllString(sm.stderr.String(), -1)) }
	for i, w := range ws {
		syscall.Kill(w.PID, syscall.SIGKILL)
		testutil.EventuallyTrue(t, 20*time.Second, "a replacement ready", func() bool {
			select {
			case <-sm.done:
				t.Fatalf("master exited: %v\n%s", sm.err, sm.stderr.String())
			default:
			}
			return ready() == 3+i
		})
	}
	if s := sm.stderr.String(); strings.Contains(s, "restart limit") || strings.Contains(s, "cannot start worker") {
		t.Errorf("a start failed:\n%s", s)
	}
}
