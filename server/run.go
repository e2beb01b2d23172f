package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/herdhttp/herd/prefork"
)

// ErrConfig marks an error in the configuration, found before anything was
// started. Main exits with status 2 for it.
var ErrConfig = errors.New("server: bad configuration")

// Main parses args with fs (on which cfg's flags were registered), then
// reads every flag that args did not set from its environment variable
// HERD_<FLAG> (and -workers from WEB_CONCURRENCY when neither sets it),
// runs the program until it is told to stop, and returns the process exit
// status: 0 after a clean stop, 2 for bad flags, variables or configuration
// (one line on stderr, nothing started), 3 when the App failed to build at
// start-up (the App's message is the last line on stderr), 1 for a failure
// while running (the last line on stderr says why).
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
	// A worker's marker is prefork's, not a setting: take it out of the
	// environment before reading the environment.
	prefork.Worker()
	environ := os.Environ()
	fromEnv, err := applyEnv(fs, environ)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		return 2
	}
	err = runWith(context.Background(), *cfg, app, runEnv{environ: environ, used: variables(fromEnv)})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrConfig):
		fmt.Fprintf(os.Stderr, "%s: %s\n", fs.Name(), blameEnv(errors.Unwrap(err).Error(), fromEnv))
		return 2
	case errors.Is(err, ErrApp):
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		return 3
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

// runEnv is what Main read from the environment, once.
type runEnv struct {
	environ []string // the process's environment; nil: prefork reads it
	used    []string // the variables that set flags
	// onStart, if not nil, is called once the application is served
	// (Start waits for it).
	onStart func(started)
}

// started is what a run tells Start once it serves.
type started struct {
	addrs  []net.Addr // the application's, as bound
	admin  net.Addr   // nil: no admin listener
	runDir string
	tls    bool // the TCP addresses serve TLS
}

func (e runEnv) started(st started) {
	if e.onStart != nil {
		e.onStart(st)
	}
}

// Run runs this process's role until ctx is cancelled or a stop signal
// arrives: a worker if a herd master started this process, else a master
// (Workers >= 1) or a single process (Workers == 0). Errors in the
// configuration satisfy errors.Is(err, ErrConfig) and are returned before
// anything is started; an App that fails to build at start-up makes an
// error that satisfies errors.Is(err, ErrApp). Run reads no HERD_ variable:
// Main does.
func Run(ctx context.Context, cfg Config, app App) error {
	return runWith(ctx, cfg, app, runEnv{})
}

func runWith(ctx context.Context, cfg Config, app App, env runEnv) error {
	if w, ok := prefork.Worker(); ok {
		cfg = cfg.withDefaults()
		return runWorker(ctx, cfg, w, app, newLogger(cfg, os.Stderr), env.started)
	}
	s, err := cfg.validate()
	if err != nil {
		return configError{err}
	}
	return run(ctx, s, app, env, newLogger(s.Config, os.Stderr))
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	if cfg.Logger != nil {
		return cfg.Logger
	}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
