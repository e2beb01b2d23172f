package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/mmapstore"
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
	page, err := newStatusPage(s.Config, dir, b, log)
	if err != nil {
		return configError{err}
	}
	defer page.close()
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
	reader := mmapstore.NewReader()
	files := metrics.NewDirGatherer(dir, metrics.GathererOpts{Logger: log, Reader: reader})
	g := metrics.Gatherers{files, spaceGatherer(dir)}
	if bg := b.gatherer(); bg != nil {
		g = append(g, bg)
	}
	adminSrv := startAdmin(admin, adminMux(withExport(s.Config, dir, g, log), b.workers, dir, s.sec, page.routes), log)
	defer stopAdmin(adminSrv)
	warnExposedAdmin(admin, s.sec, log)
	attrs := s.logAttrs()
	if len(env.used) > 0 {
		attrs = append(attrs, "from_env", env.used)
	}
	log.Info("configuration", attrs...)
	addrs := b.addrs()
	start := []any{"pid", os.Getpid(), "workers", s.Workers, "bind", addrString(addrs[0])}
	if len(addrs) > 1 {
		all := make([]string, len(addrs))
		for i, a := range addrs {
			all[i] = addrString(a)
		}
		start = append(start, "binds", strings.Join(all, ","))
	}
	log.Info(b.startMessage(), append(start, "admin", adminAddr(admin), "metrics_dir", dir)...)
	st := started{addrs: addrs, runDir: dir, tls: s.TLSCert != ""}
	if admin != nil {
		st.admin = admin.Addr()
	}
	ready := func() {
		env.started(st)
		// The first scrape's work, now that the workers' files exist (and, after a
		// binary upgrade, those of the old master's workers), if anything scrapes.
		if admin != nil {
			go warmMetrics(files, reader, log)
		}
	}
	if err := b.run(ctx, ready); err != nil {
		return explainFailure(err, dir)
	}
	return nil
}

// warmMetrics warms the cache of the /metrics gatherer and logs what it read.
func warmMetrics(g *metrics.DirGatherer, r *mmapstore.Reader, log *slog.Logger) {
	start := time.Now()
	if err := g.Warm(); err != nil {
		log.Warn("metrics cache not warmed", "err", err)
		return
	}
	st := r.Stats()
	log.Info("metrics cache warmed", "files", st.Files, "entries", st.ParsedEntries, "took", time.Since(start).Round(time.Microsecond))
}

// addrString is an application address as -bind gives it: "unix:/path"
// for a unix socket.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return prefork.UnixPrefix + a.String()
	}
	return a.String()
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
