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

	"github.com/herdhttp/herd/metrics"
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

// config is the parsed command line.
type config struct {
	dir       string
	bind      string
	logFormat string
}

// usageError is a bad command line: exit status 2, one line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses args; getenv supplies the PROMETHEUS_MULTIPROC_DIR
// default. It checks the values but opens nothing.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flagSet(&c, getenv)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if c.dir == "" {
		return c, usageError{"-dir is required (or set PROMETHEUS_MULTIPROC_DIR)"}
	}
	if err := checkDir(c.dir); err != nil {
		return c, usageError{"-dir: " + err.Error()}
	}
	if _, _, err := net.SplitHostPort(c.bind); err != nil {
		return c, usageError{"-bind: " + err.Error()}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, usageError{fmt.Sprintf("-log-format: must be \"text\" or \"json\", got %q", c.logFormat)}
	}
	return c, nil
}

// flagSet registers the flags, writing into c.
func flagSet(c *config, getenv func(string) string) *flag.FlagSet {
	dir := getenv("PROMETHEUS_MULTIPROC_DIR")
	if dir == "" {
		dir = getenv("prometheus_multiproc_dir") // client_python before 0.10
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", dir, "prometheus_client multiprocess `directory` to serve (default $PROMETHEUS_MULTIPROC_DIR)")
	fs.StringVar(&c.bind, "bind", defaultBind, "listen `address` of /metrics and /healthz")
	fs.StringVar(&c.logFormat, "log-format", "text", "\"text\" or \"json\"")
	return fs
}

// checkDir reports why dir cannot be served, or nil.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	return nil
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
	srv := &http.Server{
		Handler:           newHandler(c.dir, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info(name+" started", "pid", os.Getpid(), "dir", c.dir, "bind", ln.Addr().String())

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

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// newHandler serves /metrics (the merged directory) and /healthz.
func newHandler(dir string, log *slog.Logger) http.Handler {
	// Skipped files are logged once each and counted in herd_metrics_files_skipped.
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{Logger: log})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(g, metrics.HandlerOpts{Logger: log}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := checkDir(dir); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>%s</title></head><body><h1>%s</h1><p><a href=\"/metrics\">/metrics</a> <a href=\"/healthz\">/healthz</a></p></body></html>\n", name, name)
	})
	return mux
}
