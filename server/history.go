package server

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// history is what the admin listener remembers of the workers for the
// status page (statuspage.go): every worker's request count, sampled every
// sampleEvery and kept for sampleKeep samples (the last five minutes); the
// last exitKeep worker exits with their reasons; and the outcome of the
// last reload. Every part is a fixed-size ring or a single value: a run of
// months costs no more memory than a run of minutes.
//
// The samples come from the same prefork.WorkerInfo that /workers shows
// (request counts as of each worker's last heartbeat); nothing is asked of
// a worker, so a hung worker cannot stall the page.
//
// history is safe for concurrent use.
type history struct {
	mu      sync.Mutex // guards the fields below
	samples ring[sample]
	exits   ring[exitRecord]
	reload  reloadOutcome
}

const (
	// sampleEvery is how often the request counts are sampled.
	sampleEvery = 2 * time.Second
	// sampleKeep samples cover the last five minutes.
	sampleKeep = int(5 * time.Minute / sampleEvery)
	// exitKeep is how many worker exits the page lists.
	exitKeep = 20
)

// sample is the request count of every live worker at one time.
type sample struct {
	at     time.Time
	counts []workerCount
}

type workerCount struct {
	slot, pid int
	requests  uint64
}

// exitRecord is one reaped worker and when the master reaped it.
type exitRecord struct {
	at time.Time
	prefork.WorkerExit
}

// reloadOutcome is the last reload: none while Started is zero, in
// progress while Ended is zero.
type reloadOutcome struct {
	Started time.Time
	Ended   time.Time
	// Result is "ok" (every slot replaced), "failed" (a new worker
	// failed to boot: the old workers keep serving), or what a reload
	// strategy reports through reloadEnded ("rolled_back").
	Result string
	Detail string // one line for people, or ""
}

func newHistory() *history {
	return &history{samples: newRing[sample](sampleKeep), exits: newRing[exitRecord](exitKeep)}
}

// run records a sample of workers() now and every sampleEvery until ctx is
// done.
func (h *history) run(ctx context.Context, workers func() []prefork.WorkerInfo) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		h.record(time.Now(), workers())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record adds the sample of ws taken at at. A reload in progress is over
// when every worker was started after it began and is ready (prefork says
// when a rolling restart begins, not when it ends).
func (h *history) record(at time.Time, ws []prefork.WorkerInfo) {
	s := sample{at: at, counts: make([]workerCount, 0, len(ws))}
	for _, w := range ws {
		s.counts = append(s.counts, workerCount{slot: w.Slot, pid: w.PID, requests: w.Requests})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples.push(s)
	if h.reload.Started.IsZero() || !h.reload.Ended.IsZero() || len(ws) == 0 {
		return
	}
	for _, w := range ws {
		if w.State != prefork.StateReady || !w.Started.After(h.reload.Started) {
			return
		}
	}
	h.reload.Ended, h.reload.Result, h.reload.Detail = at, "ok", "every worker replaced"
}

// exited records a reaped worker. Threading: prefork's OnWorkerExit hook
// (the supervisor goroutine); it only takes a lock.
func (h *history) exited(at time.Time, e prefork.WorkerExit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.exits.push(exitRecord{at: at, WorkerExit: e})
	// prefork abandons a rolling restart when one of its new workers
	// fails to boot; the old workers keep serving.
	if e.Reason == prefork.ExitBootFailed && h.reloadPendingLocked() && e.Started.After(h.reload.Started) {
		h.reload.Ended, h.reload.Result = at, "failed"
		h.reload.Detail = "a new worker (slot " + strconv.Itoa(e.Slot) + ") failed to boot; the old workers keep serving"
	}
}

// reloadStarted records the start of a reload. Threading: prefork's
// OnReload hook.
func (h *history) reloadStarted(at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reload = reloadOutcome{Started: at}
}

// reloadEnded records how the reload in progress ended, for a reload
// strategy that knows better than record's inference (a canary that
// rolled back); result is a short word ("ok", "rolled_back"), detail one
// line for people. Without a reload in progress it records one that
// started and ended at at.
func (h *history) reloadEnded(at time.Time, result, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.reloadPendingLocked() {
		h.reload = reloadOutcome{Started: at}
	}
	h.reload.Ended, h.reload.Result, h.reload.Detail = at, result, detail
}

func (h *history) reloadPendingLocked() bool {
	return !h.reload.Started.IsZero() && h.reload.Ended.IsZero()
}

// lastReload returns the last reload's outcome.
func (h *history) lastReload() reloadOutcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reload
}

// recentExits returns the recorded exits, the most recent first.
func (h *history) recentExits() []exitRecord {
	h.mu.Lock()
	es := h.exits.items()
	h.mu.Unlock()
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// ratePoint is a slot's requests per second between two samples, placed at
// the later one.
type ratePoint struct {
	at     time.Time
	perSec float64
}

// rates returns, for every slot with a worker in two consecutive samples,
// its requests per second between them, oldest first. A slot's rate
// counts each of its workers (two while one replaces the other): the
// growth of a worker's count since the previous sample, or the whole count
// of a worker the previous sample did not have (it started since). What a
// replaced worker served after the previous sample, before it exited, is
// not seen.
func (h *history) rates() map[int][]ratePoint {
	h.mu.Lock()
	ss := h.samples.items()
	h.mu.Unlock()
	out := map[int][]ratePoint{}
	for i := 1; i < len(ss); i++ {
		prev, cur := ss[i-1], ss[i]
		secs := cur.at.Sub(prev.at).Seconds()
		if secs <= 0 {
			continue
		}
		before := make(map[int]uint64, len(prev.counts))
		for _, c := range prev.counts {
			before[c.pid] = c.requests
		}
		delta := map[int]uint64{}
		for _, c := range cur.counts {
			d := c.requests
			if b, ok := before[c.pid]; ok && b <= c.requests {
				d -= b
			}
			delta[c.slot] += d
		}
		for slot, d := range delta {
			out[slot] = append(out[slot], ratePoint{at: cur.at, perSec: float64(d) / secs})
		}
	}
	return out
}

// ring keeps the last cap(buf) values pushed.
type ring[T any] struct {
	buf  []T
	next int // where the next value goes
	full bool
}

func newRing[T any](n int) ring[T] { return ring[T]{buf: make([]T, n)} }

func (r *ring[T]) push(v T) {
	r.buf[r.next] = v
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// items returns a copy of the values, oldest first.
func (r *ring[T]) items() []T {
	if !r.full {
		return append([]T(nil), r.buf[:r.next]...)
	}
	return append(append(make([]T, 0, len(r.buf)), r.buf[r.next:]...), r.buf[:r.next]...)
}

// history is the worker pool's history, fed by prefork's hooks.
func (p *workerPool) history() *history { return p.hist }
