package testutil

import (
	"errors"
	"testing"
	"time"
)

// WaitUntil calls cond until it returns nil or within has passed, and
// returns nil, or the error of cond's last call. The first calls come 5 ms
// apart, then the pause doubles up to 50 ms: a condition met at once costs
// little and a long wait does not keep the machine busy. cond runs on the
// caller's goroutine, so it may call t.Fatal.
func WaitUntil(within time.Duration, cond func() error) error {
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
		time.Sleep(min(pause, left)) // polling a condition with a deadline
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// errNotYet is the error of a boolean condition that does not hold.
var errNotYet = errors.New("condition not met")

// Until is WaitUntil for a condition that holds or not: it reports
// whether cond held within the time.
func Until(within time.Duration, cond func() bool) bool {
	return WaitUntil(within, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}) == nil
}

// Eventually is WaitUntil failing the test with cond's last error.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := WaitUntil(within, cond); err != nil {
		t.Fatalf("not within %s: %v", within, err)
	}
}

// EventuallyTrue is Until failing the test, naming what was awaited.
func EventuallyTrue(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(within, cond) {
		t.Fatalf("%s: not within %s", what, within)
	}
}
