package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/herdhttp/herd/prefork"
)

// runWorker serves app on the listeners inherited from the master until the
// master tells this worker to stop (or dies), then drains. The master's
// run directory comes in the worker's marker (prefork.WorkerProcess.Data).
func runWorker(ctx context.Context, cfg Config, w *prefork.WorkerProcess, app App, log *slog.Logger) error {
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
	sv, err := startServing(cfg, w.Data, w.ID, app, log, rc)
	if err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	defer sv.close()
	defer servePprof(cfg, w.Data, w.ID, log)()
	w.SetRequestCounter(sv.requests)
	w.SetInFlightCounter(sv.inFlight)
	if err := sv.serve(ctx, w.Listeners, w.Ready, w.Stop()); err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	return nil
}
