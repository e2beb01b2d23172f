package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/herdhttp/herd/metrics"
)

// runSingle serves app and the admin endpoints in this process (Workers == 0).
func runSingle(ctx context.Context, cfg Config, app App, log *slog.Logger) error {
	dir, err := makeRunDir(cfg.MetricsDir)
	if err != nil {
		return configError{err}
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return configError{fmt.Errorf("-bind: %w", err)}
	}
	admin, err := listenAdmin(cfg)
	if err != nil {
		ln.Close()
		return configError{err}
	}
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "0a", Logger: log})
	if err != nil {
		ln.Close()
		closeAdmin(admin)
		return err
	}
	defer reg.Close()
	h, err := app(reg)
	if err != nil {
		ln.Close()
		closeAdmin(admin)
		return fmt.Errorf("server: building the app: %w", err)
	}
	d := newDrainer(h, 0, nil)
	st := &status{single: true, pid: os.Getpid(), requests: d.requests.Load}
	adminSrv := startAdmin(admin, metrics.NewDirGatherer(dir, metrics.GathererOpts{}), st)
	d.serve([]net.Listener{ln})
	log.Info("serving in one process", "bind", ln.Addr().String(), "admin", adminAddr(admin), "pid", os.Getpid())
	<-ctx.Done()
	log.Info("stopping")
	d.drain(cfg.GracefulTimeout)
	stopAdmin(adminSrv)
	return nil
}
