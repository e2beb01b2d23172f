package prefork_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// Config.WorkerData reaches every worker, in its marker, without an environment variable.
func TestWorkerDataReachesEveryWorker(t *testing.T) {
	t.Parallel()
	const data = "/dev/shm/herd-run-1 with spaces=and equals"
	tm := startMaster(t, prefork.Config{Workers: 2, WorkerData: data}, "")
	ws := tm.waitReady(t, 2, 10*time.Second)
	seen := map[int]bool{}
	testutil.EventuallyTrue(t, 10*time.Second, "answers from both workers", func() bool {
		wi, err := getInfo(tm.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		if wi.Data != data {
			t.Fatalf("worker %d: Data = %q, want %q", wi.Slot, wi.Data, data)
		}
		seen[wi.PID] = true
		return seen[ws[0].PID] && seen[ws[1].PID]
	})
}

// SignalWorkers reaches every ready worker through the supervisor.
func TestSignalWorkers(t *testing.T) {
	t.Parallel()
	tm := startMaster(t, prefork.Config{Workers: 2}, "")
	ws := tm.waitReady(t, 2, 10*time.Second)
	tm.SignalWorkers(syscall.SIGUSR1)
	got := map[int]bool{}
	testutil.EventuallyTrue(t, 10*time.Second, "SIGUSR1 in both workers", func() bool {
		wi, err := getInfo(tm.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		if wi.USR1 > 1 {
			t.Fatalf("worker %d got SIGUSR1 %d times, want once", wi.Slot, wi.USR1)
		}
		if wi.USR1 == 1 {
			got[wi.PID] = true
		}
		return got[ws[0].PID] && got[ws[1].PID]
	})
	for _, w := range tm.Workers() {
		if w.PID != ws[w.Slot].PID {
			t.Errorf("worker %d was replaced after SIGUSR1", w.Slot)
		}
	}
}

// Check looks at the values alone and names the field at fault.
func TestCheckNamesTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   prefork.Config
		field string
	}{
		{prefork.Config{Workers: 0}, "Workers"},
		{prefork.Config{Workers: 1, Mode: "fork"}, "Mode"},
		{prefork.Config{Workers: 1, Timeout: time.Millisecond}, "Timeout"},
		{prefork.Config{Workers: 1, GracefulTimeout: -1}, "GracefulTimeout"},
		{prefork.Config{Workers: 1, MaxRequestsJitter: 3}, "MaxRequestsJitter"},
		{prefork.Config{Workers: 1, Env: []string{"HERD_WORKER=1"}}, "Env"},
	} {
		err := tc.cfg.Check()
		var ce *prefork.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Check(%+v) = %v, want a ConfigError about %s", tc.cfg, err, tc.field)
		}
	}
	// No address, no executable, no environment: Check does not look.
	if err := (prefork.Config{Workers: 1}).Check(); err != nil {
		t.Errorf("Check of a Config without addresses: %v", err)
	}
}
