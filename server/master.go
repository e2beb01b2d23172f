package server

import (
	"context"
	"log/slog"
	"os"
	"syscall"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// runMaster creates the run directory and the admin listener, starts the
// workers and supervises them until a stop signal (or ctx) ends the run.
// The run directory is removed when it returns, whatever the reason.
func runMaster(ctx context.Context, cfg Config, log *slog.Logger) error {
	sec, err := newAdminSecurity(cfg)
	if err != nil {
		return configError{err}
	}
	sec.setLogger(log)
	if err := checkAccessLog(cfg.AccessLog); err != nil {
		return configError{err}
	}
	// A new master started by a binary upgrade (SIGUSR2) continues the old
	// one's run: its run directory, admin listener and totals.
	in, err := inherit()
	if err != nil {
		return configError{err}
	}
	dir, err := in.makeRunDir(cfg.MetricsDir)
	if err != nil {
		return configError{err}
	}
	var m *prefork.Master
	defer func() {
		if in.ownsRunDir(m) {
			os.RemoveAll(dir)
		}
	}()
	admin, rawAdmin, err := in.listenAdmin(cfg, sec)
	if err != nil {
		return configError{err}
	}
	defer closeAdmin(admin)
	exits := in.exitCounts()
	m, err = prefork.NewMaster(prefork.Config{
		Workers:           cfg.Workers,
		Addrs:             []string{cfg.Bind},
		Mode:              prefork.ListenerMode(cfg.ListenerMode),
		GracefulTimeout:   cfg.GracefulTimeout,
		Timeout:           cfg.Timeout,
		MaxRequests:       cfg.MaxRequests,
		MaxRequestsJitter: cfg.MaxRequestsJitter,
		Env:               []string{runDirEnv + "=" + dir},
		PIDFile:           cfg.PIDFile,
		Logger:            log,
		Hooks: prefork.Hooks{
			// A dead worker's live* gauges go with it, as Python's
			// mark_process_dead does; its counters stay.
			OnWorkerExit: func(e prefork.WorkerExit) {
				exits.add(e.Reason)
				if err := metrics.RemoveLiveFiles(dir, e.ID); err != nil {
					log.Warn("removing live gauge files", "worker", e.Slot, "id", e.ID, "err", err)
				}
			},
			// The master writes no access log; its workers do, and
			// prefork does not forward SIGUSR1, so the master does.
			OnReopenLogs: func() { forwardReopen(m, log) },
		},
		Handover: handover(dir, rawAdmin, exits),
	})
	if err != nil {
		return configError{err}
	}
	st := &status{master: m}
	g := metrics.Gatherers{
		metrics.NewDirGatherer(dir, metrics.GathererOpts{Logger: log}),
		masterProcStats(dir),
		supervisionMetrics(m.Workers, exits),
	}
	adminSrv := startAdmin(admin, g, st, sec, log)
	defer stopAdmin(adminSrv)
	warnExposedAdmin(admin, sec, log)
	bind := cfg.Bind
	if as := m.Addrs(); len(as) > 0 {
		bind = as[0].String() // the port the kernel chose for ":0"
	}
	log.Info("master started", "pid", os.Getpid(), "workers", cfg.Workers, "bind", bind, "admin", adminAddr(admin), "metrics_dir", dir)
	return m.Run(ctx)
}

// forwardReopen sends SIGUSR1 to every worker that has reported ready (and
// so has its handler for it installed: the signal's default action would
// kill a worker still booting). A booting worker opens its log files after
// the rotation anyway, or checks them once it is ready.
func forwardReopen(m *prefork.Master, log *slog.Logger) {
	for _, w := range m.Workers() {
		if w.State != prefork.StateReady && w.State != prefork.StateStopping {
			continue
		}
		if err := syscall.Kill(w.PID, syscall.SIGUSR1); err != nil {
			log.Warn("forwarding SIGUSR1", "worker", w.Slot, "id", w.ID, "pid", w.PID, "err", err)
		}
	}
}

// checkAccessLog opens (creating) the access log once, so that a path the
// workers could not open is a configuration error before anything starts.
func checkAccessLog(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	f, err := openAppend(path)
	if err != nil {
		return err
	}
	return f.Close()
}
