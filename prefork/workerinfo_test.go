package prefork_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// What Workers says of each worker beyond its state: requests in flight (from the worker's
// heartbeat), CPU time (read by the master at each heartbeat) and age.

// holdRequests starts n requests to the worker at addr's /hold and returns once the worker
// answered each one's status line (they are in flight then); release ends them and waits.
func holdRequests(t *testing.T, addr string, n int) (release func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/hold", nil)
			resp, err := c.Do(req)
			errs <- err
			if err == nil {
				<-ctx.Done()
				resp.Body.Close()
			}
		}()
	}
	release = func() {
		cancel()
		wg.Wait()
		c.CloseIdleConnections()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				release()
				t.Fatalf("holding a request: %v", err)
			}
		case <-time.After(20 * time.Second):
			release()
			t.Fatal("timed out waiting for the held requests to be answered")
		}
	}
	return release
}

func TestWorkersReportInFlight(t *testing.T) {
	t.Parallel()
	const held = 5
	tm := startMaster(t, prefork.Config{Workers: 1, Timeout: 2 * time.Second, BootTimeout: 10 * time.Second}, "")
	tm.waitReady(t, 1, 10*time.Second)
	release := holdRequests(t, tm.Addrs()[0].String(), held)
	var w prefork.WorkerInfo
	testutil.EventuallyTrue(t, 10*time.Second, "the held requests reported in flight", func() bool {
		w = tm.Workers()[0]
		return w.InFlight == held
	})
	release()
	testutil.EventuallyTrue(t, 10*time.Second, "no request in flight after the release", func() bool {
		return tm.Workers()[0].InFlight == 0
	})
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"in_flight":5`) {
		t.Errorf("WorkerInfo as JSON %s, want in_flight 5", b)
	}
}

func TestWorkersReportCPUAndAge(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 1, Timeout: 2 * time.Second, BootTimeout: 10 * time.Second}, "")
	tm.waitReady(t, 1, 10*time.Second)
	var before prefork.WorkerInfo
	testutil.EventuallyTrue(t, 10*time.Second, "a heartbeat", func() bool {
		before = tm.Workers()[0]
		return !before.LastHeartbeat.IsZero()
	})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	resp, err := c.Get("http://" + tm.Addrs()[0].String() + "/spin?ms=600")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var after prefork.WorkerInfo
	testutil.EventuallyTrue(t, 10*time.Second, "the busy loop's CPU time reported", func() bool {
		after = tm.Workers()[0]
		return after.CPUSeconds >= before.CPUSeconds+0.55
	})
	t.Logf("CPU seconds %.2f before the busy loop, %.2f after", before.CPUSeconds, after.CPUSeconds)
	if after.PID != before.PID {
		t.Fatalf("worker replaced (pid %d, then %d)", before.PID, after.PID)
	}
	if limit := time.Since(after.Started).Seconds(); after.AgeSeconds <= 0 || after.AgeSeconds > limit {
		t.Errorf("age %.3f s, want more than 0 and at most %.3f s (since it started)", after.AgeSeconds, limit)
	}
	if after.AgeSeconds <= before.AgeSeconds {
		t.Errorf("age went from %.3f s to %.3f s", before.AgeSeconds, after.AgeSeconds)
	}
}

// A worker whose marker does not say that the master reads more heartbeat fields (an
// older master, which drops a heartbeat line with more than the request count) sends the
// request count alone: its heartbeats keep it alive, and it shows nothing in flight.
func TestHeartbeatToAMasterWithoutExtendedBeats(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 1, Timeout: 2 * time.Second, BootTimeout: 10 * time.Second}, "",
		func(m *prefork.Master) {
			prefork.SetForkForTest(m, func(c *prefork.ForkCall) error {
				for i, kv := range c.Env {
					v, ok := strings.CutPrefix(kv, "HERD_WORKER=")
					if !ok {
						continue
					}
					var mk map[string]any
					if err := json.Unmarshal([]byte(v), &mk); err != nil {
						return err
					}
					if mk["hb_ext"] != true {
						t.Errorf("marker %s: no hb_ext", v)
					}
					delete(mk, "hb_ext")
					b, _ := json.Marshal(mk)
					c.Env[i] = "HERD_WORKER=" + string(b)
				}
				return nil
			})
		})
	first := tm.waitReady(t, 1, 10*time.Second)[0]
	addr := tm.Addrs()[0].String()
	if _, err := getInfo(addr); err != nil {
		t.Fatal(err)
	}
	release := holdRequests(t, addr, 3)
	defer release()
	held := time.Now()
	var w prefork.WorkerInfo
	testutil.EventuallyTrue(t, 10*time.Second, "a heartbeat with the request counted", func() bool {
		w = tm.Workers()[0]
		return w.Requests >= 1 && w.LastHeartbeat.After(held)
	})
	if w.PID != first.PID || w.InFlight != 0 {
		t.Errorf("worker %+v: want pid %d with 0 in flight (not reported)", w, first.PID)
	}
	if exits := tm.exitsSnapshot(); len(exits) != 0 {
		t.Errorf("workers exited: %+v", exits)
	}
}
