package main

import (
	"net/http"

	"github.com/herdhttp/herd/bench/internal/peer"
)

func main() {
	peer.Main("nethttp", "127.0.0.1:8081", func(f peer.Flags) error {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /hello", peer.Hello)
		mux.HandleFunc("GET /healthz", peer.Healthz)
		return peer.Serve(f, mux)
	})
}
