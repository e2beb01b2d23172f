package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
)

// serving is a process that takes requests, a worker or the in-process
// backend: its metrics registry and resource gauges, the check of its
// metric files, the application's handler with the access log around it,
// and the drainer that serves it and stops it without losing a request.
type serving struct {
	cfg     Config
	log     *slog.Logger
	d       *drainer
	alog    *logFile           // nil without -access-log
	w       *Worker            // the App's view of this process
	stopApp context.CancelFunc // cancels w.Context()
	undo    []func()           // run in reverse order by close
}

// recycle is when a serving process asks to be replaced: after limit
// requests (0: never) it calls retire, once.
type recycle struct {
	limit  uint64
	retire func()
}

// startServing builds the serving state of the process of slot slot with
// file id id in the run directory dir (cfg has its defaults applied); log
// is tagged with the slot and id. An App that fails makes an error that
// satisfies errors.Is(err, ErrApp).
func startServing(cfg Config, dir string, slot int, id string, app App, log *slog.Logger, rc recycle) (_ *serving, err error) {
	s := &serving{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id, Logger: throttled(log, metricsLogEvery)})
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { reg.Close() })
	s.undo = append(s.undo, sampleProcess(reg, log))
	s.undo = append(s.undo, checkFiles(reg, log))
	ctx, cancel := context.WithCancel(context.Background())
	s.stopApp = cancel
	s.w = newWorker(ctx, reg, slot, id, log)
	// Runs only if serve did not: the functions of an App that failed, or
	// of a process that stopped before it served.
	s.undo = append(s.undo, func() { cancel(); s.w.runShutdown(time.Now().Add(cfg.GracefulTimeout)) })
	h, err := app.build(s.w)
	if err != nil {
		return nil, err
	}
	if cfg.AccessLog != "" {
		if s.alog, err = openLogFile(cfg.AccessLog); err != nil {
			return nil, err
		}
		s.undo = append(s.undo, func() { s.alog.Close() })
		h = middleware.AccessLog(s.alog)(h)
	}
	kp, err := loadAppTLS(cfg)
	if err != nil {
		return nil, err
	}
	s.d = newDrainer(h, cfg, rc.limit, rc.retire, serverErrorLog(log))
	if kp != nil {
		kp.log = log
		s.d.srv.TLSConfig = appTLSConfig(kp)
	}
	if cfg.ProxyProtocol {
		trusted, err := parseProxyFrom(cfg.ProxyProtocolFrom)
		if err != nil {
			return nil, err
		}
		timeout := cfg.ReadHeaderTimeout
		if timeout <= 0 {
			timeout = defaultReadHeaderTimeout
		}
		s.d.proxy = &proxyPolicy{trusted: trusted, timeout: timeout, log: throttled(log, metricsLogEvery)}
	}
	s.undo = append(s.undo, startExport(cfg, dir, id, log))
	return s, nil
}

// requests is the number of requests served so far.
func (s *serving) requests() uint64 { return s.d.requests.Load() }

// inFlight is the number of requests being handled now: started, not
// finished. The finished count is read first: a request is counted as
// started before it finishes, so the difference is never negative.
func (s *serving) inFlight() int {
	f := s.d.finished.Load()
	return int(s.d.requests.Load() - f)
}

// serve serves on lns, calls ready once it does, and then serves until ctx
// is done or stop is closed (nil: never); then it cancels the App's
// context, drains, and runs the App's OnShutdown functions, all within the
// graceful timeout. SIGUSR1 reopens the access log meanwhile.
func (s *serving) serve(ctx context.Context, lns []net.Listener, ready func() error, stop <-chan struct{}) error {
	// Caught before ready: the signal's default action would kill the
	// process, and the master signals only workers that are ready.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	s.d.serve(lns)
	if err := ready(); err != nil {
		s.stopApp()
		s.d.drain(0)
		return err
	}
	// The log may have been rotated while this process booted.
	s.reopenAccessLog()
wait:
	for {
		select {
		case <-usr1:
			s.reopenAccessLog()
		case <-stop:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	s.log.Info("draining", "requests", s.requests())
	deadline := time.Now().Add(s.cfg.GracefulTimeout)
	s.stopApp()
	s.d.drain(s.cfg.GracefulTimeout)
	s.w.runShutdown(deadline)
	return nil
}

func (s *serving) reopenAccessLog() {
	if s.alog == nil {
		return
	}
	reopened, err := s.alog.Reopen()
	switch {
	case err != nil:
		s.log.Error("reopening the access log; still writing the old file", "err", err)
	case reopened:
		s.log.Info("access log reopened", "path", s.alog.path)
	}
}

// close undoes startServing, last step first (the registry is closed after
// everything that writes to it has stopped).
func (s *serving) close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}

// processSampleEvery is how often a serving process updates its resource
// gauges.
const processSampleEvery = 2 * time.Second

// sampleProcess records this process's resources into reg now and every
// processSampleEvery, until the returned stop function is called; stop
// waits until the sampler no longer touches reg (call it before
// reg.Close). The gauges are a convenience: a process whose metrics
// filesystem is full serves without them.
func sampleProcess(reg *metrics.Registry, log *slog.Logger) (stop func()) {
	p, err := reg.NewProcessMetrics("")
	if err != nil {
		log.Error("resource gauges", "err", err)
		if p == nil {
			return func() {}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, processSampleEvery)
	}()
	return func() { cancel(); <-done }
}

// checkInterval is how often a serving process checks that its metric files
// are still the ones in the directory.
const checkInterval = time.Second

// checkFiles checks reg's files every checkInterval until the returned stop
// function is called (before reg.Close): a metric file removed or replaced
// under a live process (a cleanup script, a test fixture) is recreated with
// its current values instead of swallowing every later write (the third trap
// of Python's multiprocess mode).
func checkFiles(reg *metrics.Registry, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(checkInterval)
		defer t.Stop()
		var last string
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			err := reg.Check()
			if err != nil && err.Error() != last {
				log.Error("checking metric files", "err", err)
			}
			last = ""
			if err != nil {
				last = err.Error()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
