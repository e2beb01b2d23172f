package testutil

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWaitUntil(t *testing.T) {
	calls := 0
	if err := WaitUntil(10*time.Second, func() error {
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
	err := WaitUntil(100*time.Millisecond, func() error {
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
	if err := WaitUntil(0, func() error { calls++; return errors.New("no") }); err == nil || calls != 1 {
		t.Errorf("no time at all: err %v after %d calls, want an error after 1 call", err, calls)
	}
}

func TestUntil(t *testing.T) {
	calls := 0
	if !Until(10*time.Second, func() bool { calls++; return calls == 2 }) || calls != 2 {
		t.Errorf("met on the second call: %d calls", calls)
	}
	if Until(20*time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds was reported met")
	}
}

func TestSyncBufferTakesConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}
