package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/server"
)

func main() {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	greetingFile := fs.String("greeting-file", "", "answer /hello with the first line of this `file`, read as each worker starts (default: hello)")
	os.Exit(server.Main(&cfg, fs, os.Args[1:], func(w *server.Worker) (http.Handler, error) {
		return build(w, *greetingFile)
	}))
}

// build is hello's App, run in every worker: it loads what the handler
// needs (an error stops the program at start-up), builds the handler, and
// registers its clean-up, which runs once the worker's last request has
// been answered.
func build(w *server.Worker, greetingFile string) (http.Handler, error) {
	greeting := "hello"
	if greetingFile != "" {
		b, err := os.ReadFile(greetingFile)
		if err != nil {
			return nil, fmt.Errorf("reading the greeting: %w", err)
		}
		greeting, _, _ = strings.Cut(string(b), "\n")
	}
	start := time.Now()
	w.OnShutdown(func(ctx context.Context) error {
		w.Logger().Info("hello: clean-up done", "served_for", time.Since(start).Round(time.Millisecond))
		return nil
	})
	return routes(w.Registry(), greeting), nil
}

// newApp is hello's handler with the default greeting, for unit tests.
func newApp(reg *metrics.Registry) (http.Handler, error) {
	return routes(reg, "hello"), nil
}

func routes(reg *metrics.Registry, greeting string) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/hello", hello(greeting))
	r.Get("/users/{id}", user)
	r.Get("/sleep/{ms}", sleep)
	return r
}

// hello answers {"msg":greeting}; the body is encoded once.
func hello(greeting string) http.HandlerFunc {
	b, _ := json.Marshal(map[string]string{"msg": greeting})
	body := string(b) + "\n"
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func user(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"id": chi.URLParam(r, "id")})
}

func sleep(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(chi.URLParam(r, "ms"))
	if err != nil || ms < 0 || ms > 10000 {
		http.Error(w, `{"error":"ms must be 0..10000"}`, http.StatusBadRequest)
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"slept_ms":`+strconv.Itoa(ms)+"}\n")
}
