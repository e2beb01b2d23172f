// Command nethttp is herd-bench's baseline peer: plain net/http serving the
// same GET /hello as examples/hello, in one process using every core it is
// given, with no router and no metrics.
//
//	nethttp -bind 127.0.0.1:8081
//
// GET /healthz answers 200 for readiness probes.
package main

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

const helloBody = `{"msg":"hello"}` + "\n"

func main() {
	fs := flag.NewFlagSet("nethttp", flag.ContinueOnError)
	bind := fs.String("bind", "127.0.0.1:8081", "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, helloBody)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	if err := serve(*bind, mux); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

// serve runs h on bind until SIGTERM or SIGINT, then shuts down.
func serve(bind string, h http.Handler) error {
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
