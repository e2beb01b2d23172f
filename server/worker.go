package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/prefork"
)

// runWorker serves app on the listeners inherited from the master until the
// master tells this worker to stop (or dies), then drains.
func runWorker(ctx context.Context, cfg Config, w *prefork.WorkerProcess, dir string, app App, log *slog.Logger) error {
	log = log.With("worker", w.Slot, "id", w.ID)
	// SIGUSR1 (forwarded by the master) reopens the access log. Catch it
	// before Ready: its default action would kill the worker.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	if dir == "" {
		return fmt.Errorf("server: worker %d started without a run directory", w.Slot)
	}
	sv, err := startServing(cfg, dir, w.ID, app, log)
	if err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	defer sv.close()
	h, alog := sv.handler, sv.alog
	limit := uint64(0)
	if n := w.MaxRequests(); n > 0 {
		limit = uint64(n)
	}
	d := newDrainer(h, cfg, limit, func() {
		if err := w.Retire(); err != nil {
			log.Warn("asking the master for a replacement", "err", err)
		}
	}, slog.NewLogLogger(log.Handler(), slog.LevelError))
	w.SetRequestCounter(d.requests.Load)
	d.serve(w.Listeners)
	if err := w.Ready(); err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	// The master forwards SIGUSR1 only to ready workers: look once now in
	// case the log was rotated while this one booted.
	reopenAccessLog(alog, log)
wait:
	for {
		select {
		case <-usr1:
			reopenAccessLog(alog, log)
		case <-w.Stop():
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("worker draining", "requests", d.requests.Load())
	d.drain(cfg.GracefulTimeout)
	return nil
}

// withAccessLog wraps h in the access log middleware when path is set.
func withAccessLog(h http.Handler, path string) (http.Handler, *logFile, error) {
	if path == "" {
		return h, nil, nil
	}
	lf, err := openLogFile(path)
	if err != nil {
		return nil, nil, err
	}
	return middleware.AccessLog(lf)(h), lf, nil
}

func reopenAccessLog(lf *logFile, log *slog.Logger) {
	if lf == nil {
		return
	}
	reopened, err := lf.Reopen()
	switch {
	case err != nil:
		log.Error("reopening the access log; still writing the old file", "err", err)
	case reopened:
		log.Info("access log reopened", "path", lf.path)
	}
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
