package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A test here never sleeps for a guessed time to let something happen: it
// waits for the condition itself, with a deadline. waitUntil is the one loop
// that does so; eventually is waitUntil failing the test.

// waitUntil calls cond until it returns nil or within has passed, and
// returns nil, or the error of cond's last call. The first calls come 5 ms
// apart, then the pause doubles up to 50 ms: a condition met at once costs
// little and a long wait does not keep the machine busy. cond runs on the
// caller's goroutine, so it may call t.Fatal.
func waitUntil(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	pause := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// eventually fails the test at once unless cond returns nil within the
// given time; the message is cond's last error, which says what was awaited
// and what was seen instead.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := waitUntil(within, cond); err != nil {
		t.Fatalf("not within %s: %v", within, err)
	}
}

func TestWaitUntil(t *testing.T) {
	t.Parallel()
	calls := 0
	if err := waitUntil(10*time.Second, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	}); err != nil || calls != 3 {
		t.Errorf("met on the third call: err %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	start := time.Now()
	err := waitUntil(100*time.Millisecond, func() error {
		calls++
		return fmt.Errorf("call %d", calls)
	})
	took := time.Since(start)
	if want := fmt.Sprintf("call %d", calls); err == nil || err.Error() != want {
		t.Errorf("never met: err %v, want the last call's error %q", err, want)
	}
	if took < 100*time.Millisecond || calls < 3 {
		t.Errorf("never met: gave up after %s and %d calls, want at least 100ms and several calls", took, calls)
	}

	calls = 0
	if err := waitUntil(0, func() error { calls++; return errors.New("no") }); err == nil || calls != 1 {
		t.Errorf("no time at all: err %v after %d calls, want an error after 1 call", err, calls)
	}
}
