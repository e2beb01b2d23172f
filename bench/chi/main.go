package main

import (
	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/bench/internal/peer"
)

func main() {
	peer.Main("chi", "127.0.0.1:8085", func(f peer.Flags) error {
		r := chi.NewRouter()
		r.Get("/hello", peer.Hello)
		r.Get("/healthz", peer.Healthz)
		return peer.Serve(f, r)
	})
}
