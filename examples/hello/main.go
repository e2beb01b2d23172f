// Command hello is herd's reference application: a chi router with herd's
// metrics middleware, served by N worker processes.
//
//	GET /hello        200 {"msg":"hello"}
//	GET /users/{id}   200 {"id":"<id>"}
//	GET /sleep/{ms}   waits ms milliseconds (at most 10,000), then 200
//
// Run it with -h for the flags.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"strconv"
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
	os.Exit(server.Main(&cfg, fs, os.Args[1:], newApp))
}

func newApp(reg *metrics.Registry) (http.Handler, error) {
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/hello", hello)
	r.Get("/users/{id}", user)
	r.Get("/sleep/{ms}", sleep)
	return r, nil
}

const helloBody = `{"msg":"hello"}` + "\n"

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, helloBody)
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
