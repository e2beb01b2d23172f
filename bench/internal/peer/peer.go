package peer

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// HelloBody is the body of GET /hello, the same as examples/hello's.
const HelloBody = `{"msg":"hello"}` + "\n"

// Hello answers GET /hello as examples/hello does.
func Hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, HelloBody)
}

// Healthz answers GET /healthz: 200, for readiness probes.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, "ok\n")
}

// Timeouts are the read timeouts of a peer's http.Server (0: none).
type Timeouts struct {
	ReadHeader, Read, Idle time.Duration
}

// The -timeouts choices.
const (
	// TimeoutsHerd are herd's defaults (server.Config: ReadHeaderTimeout
	// 10s, ReadTimeout 60s, IdleTimeout 120s): a peer compared with herd
	// pays for the same deadlines per request (net/http moves a timer
	// for each of them).
	TimeoutsHerd = "herd"
	// TimeoutsHeader is ReadHeaderTimeout alone, 10s, what many net/http
	// programs set (and what go vet's linters ask for).
	TimeoutsHeader = "header"
)

// ParseTimeouts returns the timeouts of a -timeouts choice.
func ParseTimeouts(s string) (Timeouts, error) {
	switch s {
	case TimeoutsHerd:
		return Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Idle: 120 * time.Second}, nil
	case TimeoutsHeader:
		return Timeouts{ReadHeader: 10 * time.Second}, nil
	}
	return Timeouts{}, fmt.Errorf("-timeouts %q: want %q or %q", s, TimeoutsHerd, TimeoutsHeader)
}

// Flags are a peer program's command line.
type Flags struct {
	Bind     string // -bind: the listen address
	Timeouts Timeouts
}

// ParseFlags reads -bind (bind by default) and -timeouts (herd's by
// default) from args.
func ParseFlags(name, bind string, args []string) (Flags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("bind", bind, "listen address")
	timeouts := fs.String("timeouts", TimeoutsHerd, fmt.Sprintf("the server's read timeouts: %q (herd's defaults: read-header 10s, read 60s, idle 120s) or %q (read-header 10s alone)", TimeoutsHerd, TimeoutsHeader))
	if err := fs.Parse(args); err != nil {
		return Flags{}, err
	}
	if fs.NArg() > 0 {
		return Flags{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	t, err := ParseTimeouts(*timeouts)
	if err != nil {
		return Flags{}, err
	}
	return Flags{Bind: *addr, Timeouts: t}, nil
}

// Main is the main of the peer program called name: it reads its command
// line (ParseFlags), exiting 2 on a bad one, then runs serve, exiting 1
// with its error.
func Main(name, bind string, serve func(Flags) error) {
	f, err := ParseFlags(name, bind, os.Args[1:])
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		}
		os.Exit(2)
	}
	if err := serve(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// NewServer is the http.Server of a peer: h on f.Bind, with f's timeouts.
func NewServer(f Flags, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              f.Bind,
		Handler:           h,
		ReadHeaderTimeout: f.Timeouts.ReadHeader,
		ReadTimeout:       f.Timeouts.Read,
		IdleTimeout:       f.Timeouts.Idle,
	}
}

// Serve runs h as f says until SIGTERM or SIGINT, then shuts down.
func Serve(f Flags, h http.Handler) error {
	srv := NewServer(f, h)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
