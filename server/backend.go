package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// A backend is where a run serves the application: in this process
// (inProcess, Workers == 0) or in worker processes that prefork starts and
// supervises (workerPool). The lifecycle (run) is the same for both; the
// backend is what differs.
type backend interface {
	// startMessage is the log message that announces the run.
	startMessage() string
	// addrs are the application's addresses as bound (the port chosen for
	// ":0").
	addrs() []net.Addr
	// workers describes the processes serving the application, for
	// /workers and /healthz.
	workers() []prefork.WorkerInfo
	// gatherer is the backend's own metrics, or nil.
	gatherer() metrics.Gatherer
	// run serves until ctx is done or a stop signal arrives, drains, and
	// returns nil after a requested stop or the error that ended the run.
	// It calls ready once, when the application is served (every worker
	// of the start-up ready).
	run(ctx context.Context, ready func()) error
	// close releases what creating the backend acquired, if run did not.
	close()
}

// newBackend creates the backend of s: its sockets are open when it
// returns. Errors are problems of the configuration (an address in use).
func (s *settings) newBackend(dir string, app App, environ []string, log *slog.Logger, up upgradeLink) (backend, error) {
	if s.Workers == 0 {
		return newInProcess(s, dir, app, log)
	}
	return newWorkerPool(s, dir, environ, log, up)
}

// upgradeLink is what a worker pool continues from an old master and hands
// to a new one in a binary upgrade (upgrade.go): the exit totals, and the
// handover of the run directory and admin socket.
type upgradeLink struct {
	exits    *exitCounts
	handover func() (prefork.Handover, error)
}

// inProcess serves the application in this process, as worker slot 0 with
// file id "0a": the same serving state and drain as a worker, started and
// stopped by this process's own signals instead of a master.
type inProcess struct {
	cfg Config
	dir string
	app App
	log *slog.Logger
	lns []net.Listener

	mu      sync.Mutex // guards the fields below
	sv      *serving   // nil until the app is built
	info    prefork.WorkerInfo
	lnsOpen bool
}

func newInProcess(s *settings, dir string, app App, log *slog.Logger) (*inProcess, error) {
	lns, err := s.listener.listenInProcess()
	if err != nil {
		return nil, err
	}
	return &inProcess{
		cfg: s.Config, dir: dir, app: app, log: log, lns: lns, lnsOpen: true,
		info: prefork.WorkerInfo{Slot: 0, ID: metrics.DefaultID, PID: os.Getpid(), State: prefork.StateStarting, Started: time.Now()},
	}, nil
}

func (b *inProcess) startMessage() string { return "serving in one process" }
func (b *inProcess) gatherer() metrics.Gatherer {
	return nil // its registry writes everything into the run directory
}

func (b *inProcess) addrs() []net.Addr {
	as := make([]net.Addr, len(b.lns))
	for i, l := range b.lns {
		as[i] = l.Addr()
	}
	return as
}

func (b *inProcess) workers() []prefork.WorkerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.info
	w.AgeSeconds = time.Since(w.Started).Seconds()
	if b.sv != nil {
		w.Requests, w.InFlight = b.sv.requests(), b.sv.inFlight()
	}
	return []prefork.WorkerInfo{w}
}

// run builds the app, serves, and drains on SIGTERM, SIGINT or SIGQUIT
// (the signals a master handles for its workers) or when ctx is done.
func (b *inProcess) run(ctx context.Context, ready func()) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()
	defer refuseUpgrades(b.log)()
	log := b.log.With("worker", b.info.Slot, "id", b.info.ID)
	sv, err := startServing(b.cfg, b.dir, b.info.Slot, b.info.ID, b.app, log, recycle{})
	if err != nil {
		if errors.Is(err, ErrApp) {
			return err
		}
		return fmt.Errorf("server: %w", err)
	}
	defer sv.close()
	b.mu.Lock()
	b.sv, b.lnsOpen = sv, false // serve closes them when it drains
	b.mu.Unlock()
	return sv.serve(ctx, b.lns, func() error {
		b.mu.Lock()
		b.info.State, b.info.Ready = prefork.StateReady, time.Now()
		b.mu.Unlock()
		ready()
		return nil
	}, nil)
}

func (b *inProcess) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lnsOpen {
		for _, l := range b.lns {
			l.Close()
		}
		b.lnsOpen = false
	}
}
