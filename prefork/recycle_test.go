package prefork_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// Workers replaced by age or resident memory drain like max-requests: no failed request,
// clean planned exits, no crash counted.

func TestWorkersRecycledByAge(t *testing.T) {
	t.Parallel()
	const age, jitter = time.Second, 500 * time.Millisecond
	tm := startMaster(t, prefork.Config{Workers: 2, MaxWorkerAge: age, MaxWorkerAgeJitter: jitter, CrashLimit: 1}, "")
	// Not waitReady: with workers this short-lived, a successor often overlaps.
	testutil.EventuallyTrue(t, 20*time.Second, "two ready workers", func() bool {
		n := 0
		for _, w := range tm.Workers() {
			if w.State == prefork.StateReady {
				n++
			}
		}
		return n >= 2
	})
	ld := startLoad(tm.Addrs()[0].String(), 2)
	testutil.EventuallyTrue(t, 30*time.Second, "four workers recycled by age", func() bool { return len(tm.exitsSnapshot()) >= 4 })
	ld.finish(t)
	for _, e := range tm.exitsSnapshot() {
		if e.Reason != prefork.ExitAge || e.Err() != nil || !e.Reason.Planned() {
			t.Errorf("exit %+v, want a clean age exit", e)
		}
		if e.Ran < age {
			t.Errorf("worker %s (pid %d) replaced after %v, younger than %v", e.ID, e.PID, e.Ran, age)
		}
	}
	select {
	case err := <-tm.errc:
		t.Fatalf("master stopped: %v", err)
	default:
	}
}

func TestWorkerRecycledByMemory(t *testing.T) {
	t.Parallel()
	const limit = 64 << 20
	tm := startMaster(t, prefork.Config{Workers: 1, MaxWorkerRSS: limit, Timeout: 2 * time.Second, BootTimeout: 10 * time.Second}, "")
	first := tm.waitReady(t, 1, 10*time.Second)[0]
	var w prefork.WorkerInfo
	testutil.EventuallyTrue(t, 10*time.Second, "the worker's resident memory reported", func() bool {
		w = tm.Workers()[0]
		return w.RSS > 0
	})
	t.Logf("worker resident memory at start: %d MiB", w.RSS>>20)
	if w.RSS >= limit {
		t.Fatalf("worker starts with %d bytes resident, above the test's limit", w.RSS)
	}
	ld := startLoad(tm.Addrs()[0].String(), 2)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/grow?mib=%d", tm.Addrs()[0], (limit>>20)+16))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var now []prefork.WorkerInfo
	testutil.EventuallyTrue(t, 15*time.Second, "the big worker replaced", func() bool {
		now = tm.readyWorkers(1)
		return now != nil && now[0].PID != first.PID && len(tm.exitsSnapshot()) == 1
	})
	ld.finish(t)
	if e := tm.exitsSnapshot()[0]; e.PID != first.PID || e.Reason != prefork.ExitRSS || e.Err() != nil {
		t.Errorf("exit %+v, want a clean rss exit of pid %d", e, first.PID)
	}
	if now[0].RSS >= limit {
		t.Errorf("replacement reports %d bytes resident", now[0].RSS)
	}
}

func TestNewMasterRejectsBadRecycling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  prefork.Config
		want string
	}{
		{"negative rss", prefork.Config{MaxWorkerRSS: -1}, "max worker RSS must not be negative"},
		{"negative age", prefork.Config{MaxWorkerAge: -time.Second}, "max worker age must not be negative"},
		{"negative jitter", prefork.Config{MaxWorkerAge: time.Second, MaxWorkerAgeJitter: -1}, "max worker age jitter must not be negative"},
		{"jitter alone", prefork.Config{MaxWorkerAgeJitter: time.Second}, "max worker age jitter needs max worker age"},
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
