package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// runWorker serves app on the listeners inherited from the master until the
// master tells this worker to stop (or dies), then drains.
func runWorker(ctx context.Context, cfg Config, w *prefork.WorkerProcess, dir string, app App, log *slog.Logger) error {
	log = log.With("worker", w.Slot, "id", w.ID)
	if dir == "" {
		return fmt.Errorf("server: worker %d started without a run directory", w.Slot)
	}
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: w.ID, Logger: log})
	if err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	defer reg.Close()
	h, err := app(reg)
	if err != nil {
		return fmt.Errorf("server: worker %d: building the app: %w", w.Slot, err)
	}
	limit := uint64(0)
	if n := w.MaxRequests(); n > 0 {
		limit = uint64(n)
	}
	d := newDrainer(h, limit, func() {
		if err := w.Retire(); err != nil {
			log.Warn("asking the master for a replacement", "err", err)
		}
	})
	w.SetRequestCounter(d.requests.Load)
	d.serve(w.Listeners)
	if err := w.Ready(); err != nil {
		return fmt.Errorf("server: worker %d: %w", w.Slot, err)
	}
	select {
	case <-w.Stop():
	case <-ctx.Done():
	}
	log.Info("worker draining", "requests", d.requests.Load())
	d.drain(cfg.GracefulTimeout)
	return nil
}
