package server

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
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

// connLimiter caps the connections open at once on the admin listener. The
// master's admin connections share its descriptor table with everything
// that keeps the workers alive (their sockets, pipes and forks), so a
// client opening connections must run out of admin connections long
// before the master runs out of descriptors.
//
// At the cap, a new connection makes room by closing the connection that
// has waited longest for its client (an idle keep-alive connection, or
// one that never sent a request), if it has waited at least evictAfter;
// if none has, the new connection is closed at once. So idle connections
// cannot lock out a probe or a scraper, and a request in progress is never
// cut for a newcomer.
type connLimiter struct {
	net.Listener
	max        int
	evictAfter time.Duration

	mu    sync.Mutex
	conns map[*limitedConn]struct{} // guarded by mu

	refused atomic.Uint64 // connections closed at once at the cap
	evicted atomic.Uint64 // waiting connections closed to make room
}

// adminEvictAfter is how long a connection must have waited for its client
// before a newcomer at the cap may take its place.
const adminEvictAfter = time.Second

func limitConns(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, evictAfter: adminEvictAfter, conns: map[*limitedConn]struct{}{}}
}

// Accept returns the next connection within the cap; connections past it
// are closed here, and never reach the server.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c, time.Now()); lc != nil {
			return lc, nil
		}
		l.refused.Add(1)
		c.Close()
	}
}

func (l *connLimiter) admit(c net.Conn, now time.Time) *limitedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		var victim *limitedConn
		oldest := now.Add(-l.evictAfter).UnixNano()
		for lc := range l.conns {
			if w := lc.waiting.Load(); w != 0 && w <= oldest {
				victim, oldest = lc, w
			}
		}
		if victim == nil {
			return nil
		}
		delete(l.conns, victim)
		l.evicted.Add(1)
		victim.Conn.Close() // the server sees an error and closes it again: a no-op
	}
	lc := &limitedConn{Conn: c, l: l}
	lc.waiting.Store(now.UnixNano())
	l.conns[lc] = struct{}{}
	return lc
}

func (l *connLimiter) release(lc *limitedConn) {
	l.mu.Lock()
	delete(l.conns, lc)
	l.mu.Unlock()
}

// open returns the number of connections held.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// limitedConn is a connection counted by a connLimiter. It notes whether
// the server is waiting for the client: from its last write (or its
// accept) until the client sends something, which HTTP/1 keep-alive
// connections between requests are.
type limitedConn struct {
	net.Conn
	l       *connLimiter
	waiting atomic.Int64 // unix nanoseconds since which it waits for the client; 0: busy
	closed  atomic.Bool
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.waiting.Store(0)
	}
	return n, err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.waiting.Store(time.Now().UnixNano())
	return n, err
}

// CloseWrite half-closes a TCP connection, as net/http does before closing.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c)
	}
	return c.Conn.Close()
}

// adminMaxConns is the admin listener's connection cap: an eighth of this
// process's descriptor limit (RLIMIT_NOFILE), at least 4 and at most 256.
// Scrapers and probes need a handful; the rest stays for the workers.
func adminMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 64
	}
	return connCap(rl.Cur)
}

func connCap(nofile uint64) int {
	return int(min(max(nofile/8, 4), 256))
}
