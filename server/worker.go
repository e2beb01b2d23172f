package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdhttp/herd/prefork"
)

// runWorker serves app on the listeners inherited from the master until the
// master tells this worker to stop (or dies), then drains. The master's
// run directory comes in the worker's marker (prefork.WorkerProcess.Data).
// onStart is called once the worker serves.
func runWorker(ctx context.Context, cfg Config, w *prefork.WorkerProcess, app App, log *slog.Logger, onStart func(started)) error {
	log = log.With("worker", w.Slot, "id", w.ID)
	if w.Data == "" {
		return fmt.Errorf("server: worker %d started without a run directory", w.Slot)
	}
	rc := recycle{retire: func() {
		if err := w.Retire(); err != nil {
			log.Warn("asking the master for a replacement", "err", err)
		}
	}}
	if n := w.MaxRequests(); n > 0 {
		rc.limit = uint64(n)
	}
	sv, err := startServing(cfg, w.Data, w.Slot, w.ID, app, log, rc)
	if err != nil {
		if errors.Is(err, ErrApp) {
			reportAppError(w.Data, w.ID, err, log)
		}
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	defer sv.close()
	defer servePprof(cfg, w.Data, w.ID, log)()
	w.SetRequestCounter(sv.requests)
	w.SetInFlightCounter(sv.inFlight)
	ready := func() error {
		if err := w.Ready(); err != nil {
			return err
		}
		st := started{runDir: w.Data, tls: cfg.TLSCert != ""}
		for _, l := range w.Listeners {
			st.addrs = append(st.addrs, l.Addr())
		}
		onStart(st)
		return nil
	}
	if err := sv.serve(ctx, w.Listeners, ready, w.Stop()); err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	return nil
}

// A worker whose App failed leaves the App's message for its master in the
// run directory, in a file named appErrorPrefix + its id (not a ".db"
// file, so the metric readers ignore it); the master reads and removes it
// when the worker has exited (workerPool). The run directory is private to
// the run (mode 0700).
const appErrorPrefix = "app-error-"

func reportAppError(dir, id string, err error, log *slog.Logger) {
	var ae appError
	if !errors.As(err, &ae) {
		return
	}
	if werr := os.WriteFile(filepath.Join(dir, appErrorPrefix+id), []byte(ae.msg), 0o600); werr != nil {
		log.Error("cannot leave the app's error for the master", "err", werr)
	}
}

// takeAppError returns (and removes) the message a worker with this id
// left in dir, or "" if it left none.
func takeAppError(dir, id string) string {
	p := filepath.Join(dir, appErrorPrefix+id)
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	os.Remove(p)
	return strings.TrimSpace(string(b))
}
