package main

import (
	"errors"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/bench/internal/peer"
	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
)

func main() { peer.Main("chiherd", "127.0.0.1:8086", run) }

func run(f peer.Flags) error {
	reg, err := metrics.NewRegistry(metrics.Options{})
	if err != nil {
		return err
	}
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/hello", peer.Hello)
	r.Get("/healthz", peer.Healthz)
	return errors.Join(peer.Serve(f, r), reg.Close())
}
