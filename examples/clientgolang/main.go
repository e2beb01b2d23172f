package main

import (
	"flag"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/promclient"
	"github.com/herdhttp/herd/server"
)

func main() {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("clientgolang", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	// Registered in main, not in init: every worker runs main again and
	// registers it in its own process's default registry.
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "example_jobs_total",
		Help: "Jobs run, by kind.",
	}, []string{"kind"})
	prometheus.MustRegister(jobs)
	promclient.Export(&cfg) // prometheus.DefaultGatherer: jobs, Go and process collectors
	os.Exit(server.Main(&cfg, fs, os.Args[1:], func(w *server.Worker) (http.Handler, error) {
		return newApp(w.Registry(), jobs), nil
	}))
}

// maxKinds bounds the series a client can create.
const maxKinds = 64

func newApp(reg *metrics.Registry, jobs *prometheus.CounterVec) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	k := &kinds{seen: map[string]bool{}}
	r.Get("/job", func(w http.ResponseWriter, r *http.Request) {
		kind := r.URL.Query().Get("kind")
		if !validKind(kind) {
			http.Error(w, `{"error":"kind must be 1 to 32 of [a-z0-9_]"}`, http.StatusBadRequest)
			return
		}
		if !k.admit(kind) {
			http.Error(w, `{"error":"too many kinds"}`, http.StatusTooManyRequests)
			return
		}
		jobs.WithLabelValues(kind).Inc()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"`+kind+`"}`+"\n")
	})
	return r
}

func validKind(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// kinds admits at most maxKinds distinct kinds per process.
type kinds struct {
	mu   sync.Mutex // guards seen
	seen map[string]bool
}

func (k *kinds) admit(kind string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen[kind] {
		return true
	}
	if len(k.seen) >= maxKinds {
		return false
	}
	k.seen[kind] = true
	return true
}
