package server

import (
	"context"
	"testing"
	"time"
)

func TestFailLimiterBudget(t *testing.T) {
	l := newFailLimiter(3, time.Second, 2)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.take("a", t0); !ok {
			t.Fatalf("failure %d of a burst of 3 refused", i+1)
		}
	}
	if ok, wait := l.take("a", t0); ok || wait != time.Second {
		t.Fatalf("4th failure at once: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.take("a", t0.Add(time.Second)); !ok {
		t.Fatal("one more failure after `every` refused")
	}
	// A success gives its reservation back.
	l.refund("a", t0.Add(time.Second))
	if ok, _ := l.take("a", t0.Add(time.Second)); !ok {
		t.Fatal("refunded reservation not given back")
	}
	// Another address has its own budget.
	if ok, _ := l.take("b", t0); !ok {
		t.Fatal("b limited by a's failures")
	}
	// Past max addresses with spent budgets, new ones share one budget.
	for i := range 3 {
		if ok, _ := l.take("c", t0); !ok {
			t.Fatalf("untracked address: failure %d refused", i+1)
		}
	}
	if ok, _ := l.take("d", t0); ok {
		t.Error("untracked addresses do not share a budget")
	}
	// Addresses whose budget is full again are forgotten to make room.
	if ok, _ := l.take("e", t0.Add(time.Hour)); !ok {
		t.Error("a new address refused an hour later")
	}
	if n := len(l.addrs); n > 2 {
		t.Errorf("%d addresses tracked, max 2", n)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1234":             "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":      "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":       "192.0.2.7",
		"not an address":             "not an address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// With every hash slot taken, a password to verify is answered 429 at once,
// without hashing and without spending the client's failure budget.
func TestBusyHashingAnswers429(t *testing.T) {
	a, err := newBasicAuth(writeUsers(t, minRounds, "prometheus", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for range hashSlots {
		a.slots <- struct{}{}
	}
	code, retry := authStatus(a, context.Background(), "192.0.2.1:1", "prometheus", "guess")
	if code != 429 || retry != "1" {
		t.Errorf("all slots busy: %d Retry-After %q, want 429 and 1", code, retry)
	}
	if a.rounds.Load() != 0 || len(a.fails.addrs) != 0 {
		t.Errorf("a refused request hashed (%d rounds) or spent budget (%v)", a.rounds.Load(), a.fails.addrs)
	}
	for range hashSlots {
		<-a.slots
	}
	if code, _ := authStatus(a, context.Background(), "192.0.2.1:1", "prometheus", "s3cret"); code != 200 {
		t.Errorf("a free slot: %d, want 200", code)
	}
}
