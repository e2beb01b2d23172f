package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// runSingle serves app and the admin endpoints in this process (Workers == 0).
func runSingle(ctx context.Context, cfg Config, app App, log *slog.Logger) error {
	sec, err := newAdminSecurity(cfg)
	if err != nil {
		return configError{err}
	}
	sec.setLogger(log)
	if err := checkAccessLog(cfg.AccessLog); err != nil {
		return configError{err}
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	dir, err := makeRunDir(cfg.MetricsDir)
	if err != nil {
		return configError{err}
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return configError{fmt.Errorf("-bind: %w", err)}
	}
	defer ln.Close()
	admin, err := listenAdmin(cfg, sec)
	if err != nil {
		return configError{err}
	}
	defer closeAdmin(admin)
	if cfg.PIDFile != "" {
		if err := prefork.WritePIDFile(cfg.PIDFile); err != nil {
			return configError{err}
		}
		defer prefork.RemovePIDFile(cfg.PIDFile)
	}
	sv, err := startServing(cfg, dir, "0a", app, log)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer sv.close()
	h, alog := sv.handler, sv.alog
	d := newDrainer(h, cfg, 0, nil, slog.NewLogLogger(log.Handler(), slog.LevelError))
	st := &status{pid: os.Getpid(), requests: d.requests.Load}
	adminSrv := startAdmin(admin, withExport(cfg, dir, metrics.NewDirGatherer(dir, metrics.GathererOpts{Logger: log}), log), st, sec, log)
	warnExposedAdmin(admin, sec, log)
	d.serve([]net.Listener{ln})
	log.Info("serving in one process", "bind", ln.Addr().String(), "admin", adminAddr(admin), "pid", os.Getpid(), "metrics_dir", dir)
wait:
	for {
		select {
		case <-usr1:
			reopenAccessLog(alog, log)
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("stopping")
	d.drain(cfg.GracefulTimeout)
	stopAdmin(adminSrv)
	return nil
}
