package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	name        = "herd-exporter"
	defaultBind = "127.0.0.1:9095"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it returns the exit status. It serves until ctx
// is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	c, err := parseFlags(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "Usage: %s -dir DIR [-bind ADDR]\n\nServes the merged metrics of a prometheus_client multiprocess directory.\n\n", name)
		fs := flagSet(new(config), getenv)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	ln, err := net.Listen("tcp", c.bind)
	if err != nil {
		fmt.Fprintf(stderr, "%s: -bind: %v\n", name, err)
		return 2
	}
	log := newLogger(c.logFormat, stderr)
	g := newGatherer(c, log)
	srv := newServer(c, g, log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(newLimitListener(ln, c.maxConns)) }()
	log.Info(name+" started", "pid", os.Getpid(), "dir", c.dir, "bind", ln.Addr().String())
	// The first scrape's work, done now: a scrape meanwhile waits for it.
	go g.warm()

	select {
	case err := <-served:
		log.Error("serving", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	log.Info(name + " stopped")
	return 0
}

// newServer is the HTTP server, with the timeouts of herd's admin listener:
// scrapers and probes send small requests and read promptly, and a slow or
// idle client must not hold the exporter's resources.
func newServer(c config, g *gatherer, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handlerFor(c, g, log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
