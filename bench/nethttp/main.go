// Command nethttp is herd-bench's baseline peer: plain net/http serving the
// same GET /hello as examples/hello, in one process using every core it is
// given, with no router and no metrics.
//
//	nethttp -bind 127.0.0.1:8081
//
// GET /healthz answers 200 for readiness probes.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/herdhttp/herd/bench/internal/peer"
)

func main() {
	fs := flag.NewFlagSet("nethttp", flag.ContinueOnError)
	bind := fs.String("bind", "127.0.0.1:8081", "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, peer.HelloBody)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	if err := peer.Serve(*bind, mux); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}
