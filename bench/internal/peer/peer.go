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

// Main is the main of the peer program called name: it reads -bind (the
// listen address, bind by default) from the command line, exiting 2 on a
// bad one, then runs serve with the address, exiting 1 with its error.
func Main(name, bind string, serve func(bind string) error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("bind", bind, "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := serve(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Serve runs h on bind until SIGTERM or SIGINT, then shuts down.
func Serve(bind string, h http.Handler) error {
	srv := &http.Server{Addr: bind, Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
