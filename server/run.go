package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// App builds the application's handler. It runs once in every process that
// serves requests (each worker, or the single process when Workers == 0),
// with that process's metrics registry.
type App func(reg *metrics.Registry) (http.Handler, error)

// ErrConfig marks an error in the configuration, found before anything was
// started. Main exits with status 2 for it.
var ErrConfig = errors.New("server: bad configuration")

// runDirEnv carries the master's run directory to its workers, next to
// prefork's worker marker; read once in runWorker and then unset.
const runDirEnv = "HERD_RUN_DIR"

// Main parses args with fs (on which cfg's flags were registered), runs the
// program until it is told to stop, and returns the process exit status: 0
// after a clean stop, 2 for bad flags or configuration (one line on stderr,
// nothing started), 1 for a failure while running.
func Main(cfg *Config, fs *flag.FlagSet, args []string, app App) int {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	err := Run(context.Background(), *cfg, app)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrConfig):
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), errors.Unwrap(err))
		return 2
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		return 1
	}
}

// configError wraps err so that errors.Is(err, ErrConfig) holds and
// errors.Unwrap gives back the one-line message.
type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Unwrap() error        { return e.err }
func (e configError) Is(target error) bool { return target == ErrConfig }

// Run runs this process's role until ctx is cancelled or a stop signal
// arrives: a worker if a herd master started this process, else a master
// (Workers >= 1) or a single process (Workers == 0). Errors in the
// configuration satisfy errors.Is(err, ErrConfig) and are returned before
// anything is started.
func Run(ctx context.Context, cfg Config, app App) error {
	cfg = cfg.withDefaults()
	log := newLogger(cfg, os.Stderr)
	if w, ok := prefork.Worker(); ok {
		dir := os.Getenv(runDirEnv)
		os.Unsetenv(runDirEnv)
		return runWorker(ctx, cfg, w, dir, app, log)
	}
	if err := cfg.Validate(); err != nil {
		return configError{err}
	}
	if cfg.Workers == 0 {
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
		defer stop()
		defer refuseUpgrades(log)()
		return runSingle(ctx, cfg, app, log)
	}
	// The master's signals (TERM, INT, QUIT, HUP, TTIN, TTOU, USR1) are
	// prefork's to handle.
	return runMaster(ctx, cfg, log)
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
