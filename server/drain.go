package server

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// idleClose is how long a connection must have been idle before a draining
// worker closes it. A request that a client sends on a connection at the very
// moment the server closes it is lost (the client sees a clean EOF), so only
// connections that have been quiet for a while are closed; busy ones are
// told "Connection: close" on their next response instead.
const idleClose = time.Second

// drainer serves one handler on one or more listeners and stops without
// losing a request: see Package doc, "Draining".
type drainer struct {
	srv      *http.Server
	draining atomic.Bool
	requests atomic.Uint64
	finished atomic.Uint64 // requests whose handler has returned
	// limit is the request count after which the process asks to be
	// replaced (0: never); retire is called once when it is reached.
	limit  uint64
	retire func()
	once   sync.Once

	// conns holds every open connection (net.Conn to *connState), added
	// when net/http reports it new and removed when it is closed or
	// hijacked. Only those two changes write to the map; a request's
	// Active and Idle changes only read it and store into the entry.
	conns sync.Map
	epoch time.Time // idle times are read as time.Since(epoch): the monotonic clock only

	serving sync.WaitGroup // one per Serve goroutine
	lns     []net.Listener
	h2c     *h2cUpgrades // with -h2c: connections upgraded from HTTP/1.1
	proxy   *proxyPolicy // with -proxy-protocol: the PROXY headers to read
}

// connState is what the drainer knows of one connection: since when it has
// been idle (or new, without a request yet), in nanoseconds since the
// drainer's epoch plus one, or 0 while a request is being served on it.
type connState struct {
	idleSince atomic.Int64
}

// newDrainer serves h with cfg's timeouts and header limit (cfg has its
// defaults applied). errLog receives net/http's own errors (a handler's
// panic, accept errors).
func newDrainer(h http.Handler, cfg Config, limit uint64, retire func(), errLog *log.Logger) *drainer {
	d := &drainer{limit: limit, retire: retire, epoch: time.Now()}
	d.srv = &http.Server{
		Handler:           d.wrap(h),
		ReadHeaderTimeout: httpTimeout(cfg.ReadHeaderTimeout),
		ReadTimeout:       httpTimeout(cfg.ReadTimeout),
		WriteTimeout:      httpTimeout(cfg.WriteTimeout),
		IdleTimeout:       httpTimeout(cfg.IdleTimeout),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         d.track,
		ErrorLog:          errLog,
		Protocols:         protocols(cfg),
	}
	if cfg.IdleTimeout < 0 && cfg.ReadTimeout > 0 {
		// net/http uses ReadTimeout as the idle timeout when
		// IdleTimeout is zero; "off" must mean off.
		d.srv.IdleTimeout = 1<<63 - 1
	}
	return d
}

func (d *drainer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.h2c != nil && d.h2c.serveUpgrade(w, r) {
			return // served again over HTTP/2, and counted then
		}
		n := d.requests.Add(1)
		defer d.finished.Add(1)
		if d.draining.Load() {
			w.Header().Set("Connection", "close")
		} else if d.limit > 0 && n >= d.limit {
			// The last response of a recycled worker closes its
			// connection, so the client's next request goes to a
			// process that will serve it.
			w.Header().Set("Connection", "close")
			if d.retire != nil {
				d.once.Do(d.retire)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// track follows net/http's connection states: twice per request (active,
// then idle again) it costs one lookup and one store, and a read of the
// monotonic clock when the connection becomes idle.
func (d *drainer) track(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		cs := new(connState)
		cs.idleSince.Store(d.now())
		d.conns.Store(c, cs)
	case http.StateActive:
		if v, ok := d.conns.Load(c); ok {
			v.(*connState).idleSince.Store(0)
		}
	case http.StateIdle:
		if v, ok := d.conns.Load(c); ok {
			v.(*connState).idleSince.Store(d.now())
		}
	case http.StateClosed, http.StateHijacked:
		d.conns.Delete(c)
	}
}

// now is the time since the drainer's epoch, plus one (never 0).
func (d *drainer) now() int64 { return int64(time.Since(d.epoch)) + 1 }

// serve starts serving on every listener, over TLS the TCP listeners when
// d.srv.TLSConfig is set; it returns at once.
func (d *drainer) serve(lns []net.Listener) {
	if d.proxy != nil {
		wrapped := make([]net.Listener, len(lns))
		for i, l := range lns {
			wrapped[i] = d.proxy.listen(l)
		}
		lns = wrapped
	}
	d.lns = lns
	// Read once, before any Serve: setting HTTP/2 up gives the server a
	// TLSConfig of its own even without TLS.
	useTLS := d.srv.TLSConfig != nil
	if d.srv.Protocols.UnencryptedHTTP2() && len(lns) > 0 {
		timeout := d.srv.ReadHeaderTimeout
		if timeout <= 0 {
			timeout = defaultReadHeaderTimeout
		}
		d.h2c = newH2CUpgrades(lns[0].Addr(), timeout)
		d.serving.Add(1)
		go func() {
			defer d.serving.Done()
			d.srv.Serve(d.h2c)
		}()
	}
	for _, l := range lns {
		d.serving.Add(1)
		go func() {
			defer d.serving.Done()
			if useTLS && l.Addr().Network() == "tcp" {
				d.srv.ServeTLS(l, "", "")
			} else {
				d.srv.Serve(l)
			}
		}()
	}
}

// drain stops accepting, lets every open connection finish its current
// request, and returns when all are closed or timeout has passed (then it
// closes what remains). It must be called once.
func (d *drainer) drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	d.draining.Store(true)
	for _, l := range d.lns {
		l.Close()
	}
	if d.h2c != nil {
		d.h2c.Close() // after the upgrades under way are handed over
	}
	d.serving.Wait()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if d.closeIdle() == 0 {
			break
		}
		<-tick.C
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		d.srv.Close()
	}
	return err
}

// closeIdle closes connections idle (or new) for at least idleClose and
// returns how many connections remain open.
func (d *drainer) closeIdle() int {
	now := d.now()
	open := 0
	d.conns.Range(func(k, v any) bool {
		if since := v.(*connState).idleSince.Load(); since != 0 && time.Duration(now-since) >= idleClose {
			k.(net.Conn).Close()
			d.conns.Delete(k)
			return true
		}
		open++
		return true
	})
	return open
}
