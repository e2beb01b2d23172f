package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/herdhttp/herd/metrics"
)

// An App builds the application's handler. It runs once in every process
// that serves requests (each worker, or the single process when Workers ==
// 0), and gets that process's Worker: a context that ends when the process
// begins to drain, its metrics registry, its slot and id, a logger, and
// OnShutdown for clean-up.
//
// An error (or a panic) from the App stops the process before it serves.
// At start-up that stops the whole program: Main exits with status 3 and
// the App's message as the last line of standard error, and nothing is
// restarted. Later (a worker replaced by SIGHUP, -max-requests or a
// crash), the master logs the message and keeps the workers it has: a
// rolling restart is abandoned, a replacement is retried with backoff.
type App func(w *Worker) (http.Handler, error)

// RegistryApp adapts an App of the form that takes only the metrics
// registry, herd's first App signature:
//
//	server.Main(&cfg, fs, args, server.RegistryApp(newApp))
func RegistryApp(f func(reg *metrics.Registry) (http.Handler, error)) App {
	return func(w *Worker) (http.Handler, error) { return f(w.Registry()) }
}

// ErrApp marks the error of an App that could not build its handler. Main
// exits with status 3 for it.
var ErrApp = errors.New("server: the app failed to build")

// appError is an App's failure: its message, reported as is.
type appError struct{ msg string }

func (e appError) Error() string        { return "building the app: " + e.msg }
func (e appError) Is(target error) bool { return target == ErrApp }

// Worker is the process an App runs in, as the App sees it. Its methods
// are safe for concurrent use.
type Worker struct {
	ctx  context.Context
	reg  *metrics.Registry
	slot int
	id   string
	log  *slog.Logger

	mu        sync.Mutex // guards shutdown and shutDown
	shutdown  []func(context.Context) error
	shutDown  bool          // the functions ran (or are running)
	shutdownC chan struct{} // closed when they have run
}

func newWorker(ctx context.Context, reg *metrics.Registry, slot int, id string, log *slog.Logger) *Worker {
	return &Worker{ctx: ctx, reg: reg, slot: slot, id: id, log: log, shutdownC: make(chan struct{})}
}

// Context is cancelled when this process begins to drain (it was told to
// stop, is being replaced, or its master is gone): the signal for the
// App's background work to end. Requests in flight are still being served
// then; their own contexts are the requests'.
func (w *Worker) Context() context.Context { return w.ctx }

// Registry is this process's metrics registry; the master merges it with
// every other worker's.
func (w *Worker) Registry() *metrics.Registry { return w.reg }

// Slot is the worker's slot, 0..N-1: stable across the replacements of a
// worker (0 in a single process).
func (w *Worker) Slot() int { return w.slot }

// ID identifies this process among the live processes of the run: "<slot>a"
// or "<slot>b" (the two lanes of a slot, so that a worker and the successor
// that overlaps it differ). It is the "pid" label of the worker's own
// series (the process gauges) and names its metric files.
func (w *Worker) ID() string { return w.id }

// Logger is the program's logger with every line tagged worker=<slot> and
// id=<id>.
func (w *Worker) Logger() *slog.Logger { return w.log }

// OnShutdown registers f to run when this process stops, after the last
// request in flight has finished (or the drain has timed out): the place
// to close a database pool or flush a buffer. The functions run one at a
// time, the last registered first, with a context whose deadline is the
// end of -graceful-timeout (counted from the start of the drain; the master
// kills the worker then). An error is logged. Functions registered by an
// App that then fails run too, before the process exits. Registering after
// the functions ran does nothing.
func (w *Worker) OnShutdown(f func(ctx context.Context) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.shutDown {
		w.shutdown = append(w.shutdown, f)
	}
}

// runShutdown runs the OnShutdown functions, last first, and returns when
// they are done or at deadline, whichever comes first (a function that
// ignores its context is then abandoned, and the process goes on
// stopping). Only the first call runs them.
func (w *Worker) runShutdown(deadline time.Time) {
	w.mu.Lock()
	fs, first := w.shutdown, !w.shutDown
	w.shutdown, w.shutDown = nil, true
	w.mu.Unlock()
	if !first {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		defer close(w.shutdownC)
		for i := len(fs) - 1; i >= 0; i-- {
			if err := callShutdown(ctx, fs[i]); err != nil {
				w.log.Error("shutdown function failed", "err", err)
			}
		}
	}()
	select {
	case <-w.shutdownC:
	case <-ctx.Done():
		w.log.Error("shutdown functions still running at the end of -graceful-timeout; not waiting for them")
	}
}

// callShutdown calls f, turning a panic into an error.
func callShutdown(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return f(ctx)
}

// build calls app, turning a panic and a nil handler into errors: an App
// that cannot build must stop its process cleanly, with its message.
func (app App) build(w *Worker) (h http.Handler, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("the app panicked while building", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			h, err = nil, appError{fmt.Sprintf("panic: %v", p)}
		}
	}()
	h, err = app(w)
	switch {
	case err != nil:
		return nil, appError{err.Error()}
	case h == nil:
		return nil, appError{"the App returned a nil handler and no error"}
	}
	return h, nil
}
