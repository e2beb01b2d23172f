package server

import (
	"net"
	"sync"
	"time"
)

// failLimiter gives each client address a budget of failed password
// verifications: burst at once, then one more every `every`. An address
// whose budget is spent is refused without hashing until it recovers, so
// guessing passwords costs the guesser time, not the master CPU.
//
// Each address holds one time: when its budget will be full again (the
// "theoretical arrival time" of a GCRA limiter). At most max addresses are
// tracked; past that, addresses whose budget is full are forgotten, and if
// none is, the new ones share a single budget.
//
// A failLimiter is safe for concurrent use.
type failLimiter struct {
	burst int
	every time.Duration
	max   int

	mu    sync.Mutex
	addrs map[string]time.Time // address -> when its budget is full again
}

// Defaults of the admin listener's failure budget: a scraper with a wrong
// password (one attempt per scrape interval) is never limited; a guesser
// gets failBurst attempts, then one every failEvery.
const (
	failBurst = 5
	failEvery = 2 * time.Second
	failAddrs = 4096
)

func newFailLimiter(burst int, every time.Duration, max int) *failLimiter {
	return &failLimiter{burst: burst, every: every, max: max, addrs: map[string]time.Time{}}
}

// take reserves one failure for addr: it reports whether addr may make one
// more attempt and, if not, how long until it may. Give the reservation
// back with refund when the attempt succeeds or is not made.
func (l *failLimiter) take(addr string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	full, seen := l.addrs[addr]
	if !seen && len(l.addrs) >= l.max {
		for a, t := range l.addrs {
			if !t.After(now) {
				delete(l.addrs, a)
			}
		}
		if len(l.addrs) >= l.max {
			addr = "" // the shared budget of the addresses not tracked
			full = l.addrs[addr]
		}
	}
	if full.Before(now) {
		full = now
	}
	// Spent: the budget is full again later than burst-1 attempts from now.
	if limit := now.Add(time.Duration(l.burst-1) * l.every); full.After(limit) {
		return false, full.Sub(limit)
	}
	l.addrs[addr] = full.Add(l.every)
	return true, 0
}

// refund gives back one reservation of take.
func (l *failLimiter) refund(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	full, seen := l.addrs[addr]
	if !seen {
		addr = ""
		if full, seen = l.addrs[addr]; !seen {
			return
		}
	}
	if full = full.Add(-l.every); !full.After(now) {
		delete(l.addrs, addr)
		return
	}
	l.addrs[addr] = full
}

// clientKey is the address a request's failures are counted against: the
// IP of remoteAddr, and for IPv6 its /64 (a host usually owns a whole /64).
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
