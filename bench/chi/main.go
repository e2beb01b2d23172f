// Command chi is one of herd-bench's peers: the GET /hello of
// examples/hello on a bare chi router, in one process, without herd's
// middleware. Beside bench/nethttp (no router) and bench/chiherd (the same
// router with herd's middleware) it tells what the router costs.
//
//	chi -bind 127.0.0.1:8085
//
// GET /healthz answers 200 for readiness probes.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/bench/internal/peer"
)

func main() {
	fs := flag.NewFlagSet("chi", flag.ContinueOnError)
	bind := fs.String("bind", "127.0.0.1:8085", "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	r := chi.NewRouter()
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, peer.HelloBody)
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	if err := peer.Serve(*bind, r); err != nil {
		fmt.Fprintln(os.Stderr, "chi:", err)
		os.Exit(1)
	}
}
