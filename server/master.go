package server

import (
	"context"
	"log/slog"
	"os"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// runMaster creates the run directory and the admin listener, starts the
// workers and supervises them until a stop signal (or ctx) ends the run.
func runMaster(ctx context.Context, cfg Config, log *slog.Logger) error {
	dir, err := makeRunDir(cfg.MetricsDir)
	if err != nil {
		return configError{err}
	}
	defer os.RemoveAll(dir)
	admin, err := listenAdmin(cfg)
	if err != nil {
		return configError{err}
	}
	defer closeAdmin(admin)
	m, err := prefork.NewMaster(prefork.Config{
		Workers:           cfg.Workers,
		Addrs:             []string{cfg.Bind},
		Mode:              prefork.ListenerMode(cfg.ListenerMode),
		GracefulTimeout:   cfg.GracefulTimeout,
		Timeout:           cfg.Timeout,
		MaxRequests:       cfg.MaxRequests,
		MaxRequestsJitter: cfg.MaxRequestsJitter,
		Env:               []string{runDirEnv + "=" + dir},
		Logger:            log,
		Hooks: prefork.Hooks{
			// A dead worker's live* gauges go with it, as Python's
			// mark_process_dead does; its counters stay.
			OnWorkerExit: func(e prefork.WorkerExit) {
				if err := metrics.RemoveLiveFiles(dir, e.ID); err != nil {
					log.Warn("removing live gauge files", "worker", e.Slot, "id", e.ID, "err", err)
				}
			},
		},
	})
	if err != nil {
		return configError{err}
	}
	st := &status{master: m}
	adminSrv := startAdmin(admin, metrics.NewDirGatherer(dir, metrics.GathererOpts{}), st)
	defer stopAdmin(adminSrv)
	bind := cfg.Bind
	if as := m.Addrs(); len(as) > 0 {
		bind = as[0].String() // the port the kernel chose for ":0"
	}
	log.Info("master started", "pid", os.Getpid(), "workers", cfg.Workers, "bind", bind, "admin", adminAddr(admin), "metrics_dir", dir)
	return m.Run(ctx)
}
