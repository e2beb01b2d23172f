package server

import (
	"context"
	"log/slog"
	"os"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// run is the one lifecycle of a herd program that a user started, over
// either backend. In order: the access log is checked, the private run
// directory created, the admin listener and the backend's sockets opened
// and the pidfile written; every failure so far is a configuration error
// (exit status 2) and nothing has been forked. Then the admin endpoints
// serve, the effective configuration is logged once, and the backend runs
// until it is told to stop. Whatever happens, the run directory, the
// pidfile and the sockets are gone when run returns.
func run(ctx context.Context, s *settings, app App, env runEnv, log *slog.Logger) error {
	if err := checkAccessLog(s.AccessLog); err != nil {
		return configError{err}
	}
	// A new master started by a binary upgrade (SIGUSR2) continues the old
	// one's run: its run directory, admin listener and totals.
	in, err := inherit()
	if err != nil {
		return configError{err}
	}
	dir, err := in.makeRunDir(s.MetricsDir)
	if err != nil {
		return configError{err}
	}
	var pm *prefork.Master // the worker pool's, once there is one
	defer func() {
		if in.ownsRunDir(pm) {
			os.RemoveAll(dir)
		}
	}()
	admin, rawAdmin, err := in.listenAdmin(s.MetricsBind, s.sec)
	if err != nil {
		return configError{err}
	}
	defer closeAdmin(admin)
	exits := in.exitCounts()
	b, err := s.newBackend(dir, app, env.environ, log, upgradeLink{exits: exits, handover: handover(dir, rawAdmin, exits)})
	if err != nil {
		return configError{err}
	}
	defer b.close()
	if wp, ok := b.(*workerPool); ok {
		pm = wp.m
	}
	st, err := newStatusPage(s.Config, dir, b, log)
	if err != nil {
		return configError{err}
	}
	defer st.close()
	// A master's pidfile is prefork's, which hands it to a new master in a
	// binary upgrade; the single process writes its own.
	if s.PIDFile != "" && s.Workers == 0 {
		pf, err := prefork.WritePIDFile(s.PIDFile)
		if err != nil {
			return configError{err}
		}
		defer pf.Remove()
	}

	s.sec.setLogger(log)
	g := metrics.Gatherers{metrics.NewDirGatherer(dir, metrics.GathererOpts{Logger: log}), spaceGatherer(dir)}
	if bg := b.gatherer(); bg != nil {
		g = append(g, bg)
	}
	adminSrv := startAdmin(admin, adminMux(withExport(s.Config, dir, g, log), b.workers, dir, s.sec, st.routes), log)
	defer stopAdmin(adminSrv)
	warnExposedAdmin(admin, s.sec, log)
	attrs := s.logAttrs()
	if len(env.used) > 0 {
		attrs = append(attrs, "from_env", env.used)
	}
	log.Info("configuration", attrs...)
	log.Info(b.startMessage(), "pid", os.Getpid(), "workers", s.Workers, "bind", b.addr(),
		"admin", adminAddr(admin), "metrics_dir", dir)
	if err := b.run(ctx); err != nil {
		return explainFailure(err, dir)
	}
	return nil
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
