package middleware

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestIDCacheIsNeverWrong: the cache answers only for the very strings it
// was given (equal bytes elsewhere miss), never evicts, stays bounded, and
// never returns another list's route, from many goroutines at once.
func TestIDCacheIsNeverWrong(t *testing.T) {
	var c idCache
	a := &route{name: "/api/items/{id}"}
	pats := []string{"/api/*", "/items/{id}"}
	if c.get(pats) != nil {
		t.Fatal("empty cache answered")
	}
	c.put(pats, a)
	if got := c.get(pats); got != a {
		t.Fatalf("get after put: %v", got)
	}
	if got := c.get(append([]string(nil), pats...)); got != a {
		t.Errorf("a copy of the list (same strings): %v, want the route", got)
	}
	same := []string{strings.Clone(pats[0]), strings.Clone(pats[1])}
	if got := c.get(same); got != nil {
		t.Errorf("equal bytes in other strings: %v, want a miss", got)
	}
	if got := c.get(pats[:1]); got != nil {
		t.Errorf("a prefix of the list: %v, want a miss", got)
	}
	if got := c.get([]string{pats[0], pats[1][:3]}); got != nil {
		t.Errorf("a shorter string at the same address: %v, want a miss", got)
	}

	// Many lists from many goroutines: every answer is nil or the right
	// route; the first entry is never replaced.
	const n = 2000
	lists := make([][]string, n)
	routes := make([]*route, n)
	for i := range lists {
		lists[i] = []string{fmt.Sprintf("/r%d/*", i%37), fmt.Sprintf("/x%d", i)}
		routes[i] = &route{name: fmt.Sprint(i)}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range n {
				i := (k*7 + g*131) % n
				if got := c.get(lists[i]); got != nil && got != routes[i] {
					t.Errorf("list %d: got route %s", i, got.name)
					return
				}
				c.put(lists[i], routes[i])
			}
		}()
	}
	wg.Wait()
	if got := c.get(pats); got != a {
		t.Errorf("first entry replaced: %v", got)
	}
	filled := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			filled++
		}
	}
	if filled > idSlots {
		t.Errorf("%d entries", filled)
	}
}
