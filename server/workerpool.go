package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// workerPool serves the application in worker processes: a prefork.Master
// owns them (start, signals, reaping, recycling, exit reasons) and their
// sockets; the pool adds what the server needs of them: the cleanup of a
// dead worker's live gauges, log rotation in every worker, and the
// supervision metrics.
type workerPool struct {
	m     *prefork.Master
	exits *exitCounts
	log   *slog.Logger

	mu     sync.Mutex // guards appErr
	appErr string     // the message of the last App that failed to build
}

func newWorkerPool(s *settings, dir string, environ []string, log *slog.Logger) (*workerPool, error) {
	p := &workerPool{exits: &exitCounts{}, log: log}
	m, err := prefork.NewMaster(s.preforkConfig(dir, environ, log, prefork.Hooks{
		// A dead worker's live* gauges go with it, as Python's
		// mark_process_dead does; its counters stay.
		OnWorkerExit: func(e prefork.WorkerExit) {
			p.exits.add(e.Reason)
			if err := metrics.RemoveLiveFiles(dir, e.ID); err != nil {
				log.Warn("removing live gauge files", "worker", e.Slot, "id", e.ID, "err", err)
			}
			if msg := takeAppError(dir, e.ID); msg != "" {
				log.Error("the app failed to build", "worker", e.Slot, "id", e.ID, "err", msg)
				p.mu.Lock()
				p.appErr = msg
				p.mu.Unlock()
			}
		},
		// The master writes no access log; its workers do.
		OnReopenLogs: func() { p.m.SignalWorkers(syscall.SIGUSR1) },
	}))
	if err != nil {
		return nil, preforkError(err)
	}
	p.m = m
	return p, nil
}

func (p *workerPool) startMessage() string          { return "master started" }
func (p *workerPool) workers() []prefork.WorkerInfo { return p.m.Workers() }
func (p *workerPool) close()                        { p.m.Close() }

// run supervises the workers. A start-up stopped by workers whose App
// failed is the App's error: the master exits with the App's message.
func (p *workerPool) run(ctx context.Context) error {
	err := p.m.Run(ctx)
	if errors.Is(err, prefork.ErrBootFailed) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.appErr != "" {
			return appError{p.appErr}
		}
	}
	return err
}

func (p *workerPool) addr() string {
	if as := p.m.Addrs(); len(as) > 0 {
		return as[0].String() // the port the kernel chose for ":0"
	}
	return ""
}

// gatherer is the master's own resources (it writes no metric file) and
// the supervision metrics.
func (p *workerPool) gatherer() metrics.Gatherer {
	return metrics.Gatherers{metrics.ProcessGatherer("master"), supervisionMetrics(p.m.Workers, p.exits)}
}
