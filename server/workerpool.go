package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/mmapstore"
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
	hist  *history // for the status page
	log   *slog.Logger

	mu     sync.Mutex // guards the fields below
	appErr string     // the message of the last App that failed to build
	ready  func()     // called once the workers of the start-up are ready; then nil
	nReady int        // workers ready so far, until ready is called
	want   int        // workers at start-up
}

func newWorkerPool(s *settings, dir string, environ []string, log *slog.Logger, up upgradeLink) (*workerPool, error) {
	p := &workerPool{exits: up.exits, hist: newHistory(), log: log, want: s.Workers}
	pc := s.preforkConfig(dir, environ, log, prefork.Hooks{
		// A dead worker's live* gauges go with it, as Python's
		// mark_process_dead does; its counters stay. So do the files
		// it was making or had moved aside when it died; no other
		// worker with its id runs before this hook returns.
		OnWorkerExit: func(e prefork.WorkerExit) {
			p.exits.add(e.Reason)
			p.hist.exited(time.Now(), e)
			if err := metrics.RemoveLiveFiles(dir, e.ID); err != nil {
				log.Warn("removing live gauge files", "worker", e.Slot, "id", e.ID, "err", err)
			}
			if n, err := mmapstore.RemoveLeftovers(dir, e.ID); err != nil {
				log.Warn("removing leftover metric files", "worker", e.Slot, "id", e.ID, "err", err)
			} else if n > 0 {
				log.Info("removed leftover metric files", "worker", e.Slot, "id", e.ID, "files", n)
			}
			if msg := takeAppError(dir, e.ID); msg != "" {
				log.Error("the app failed to build", "worker", e.Slot, "id", e.ID, "err", msg)
				p.mu.Lock()
				p.appErr = msg
				p.mu.Unlock()
			}
		},
		OnWorkerReady: func(prefork.WorkerEvent) { p.workerReady() },
		// The master writes no access log; its workers do.
		OnReopenLogs: func() { p.m.SignalWorkers(syscall.SIGUSR1) },
		OnReload:     func() { p.hist.reloadStarted(time.Now()) },
	})
	pc.Handover = up.handover
	m, err := prefork.NewMaster(pc)
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
func (p *workerPool) run(ctx context.Context, ready func()) error {
	p.mu.Lock()
	p.ready = ready
	p.mu.Unlock()
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

func (p *workerPool) addrs() []net.Addr { return p.m.Addrs() }

// workerReady counts the workers of the start-up that are ready, and calls
// the run's ready function when they all are.
func (p *workerPool) workerReady() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready == nil {
		return
	}
	if p.nReady++; p.nReady >= p.want {
		p.ready()
		p.ready = nil
	}
}

// gatherer is the master's own resources (it writes no metric file), the
// supervision metrics, the listen queues and the reloads' outcomes.
func (p *workerPool) gatherer() metrics.Gatherer {
	return metrics.Gatherers{
		metrics.ProcessGatherer("master"),
		supervisionMetrics(p.m.Workers, p.m.Counters, p.exits),
		listenQueueMetrics(p.m.ListenQueues),
		reloadMetrics(p.m.Counters),
	}
}
