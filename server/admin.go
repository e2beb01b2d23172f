package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// workerJSON is one element of GET /workers.
type workerJSON struct {
	Slot          int       `json:"slot"`
	ID            string    `json:"id"`
	PID           int       `json:"pid"`
	State         string    `json:"state"`
	Started       time.Time `json:"started"`
	Restarts      int       `json:"restarts"`
	Requests      uint64    `json:"requests"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
}

// status answers /healthz and /workers for either the master or a single
// process.
type status struct {
	master *prefork.Master // nil in single-process mode

	single   bool
	pid      int
	started  time.Time
	requests func() uint64
}

func (s *status) workers() []workerJSON {
	if s.master == nil {
		return []workerJSON{{Slot: 0, ID: "0a", PID: s.pid, State: "ready", Started: s.started, Requests: s.requests()}}
	}
	infos := s.master.Workers()
	out := make([]workerJSON, 0, len(infos))
	for _, w := range infos {
		out = append(out, workerJSON{
			Slot:          w.Slot,
			ID:            w.ID,
			PID:           w.PID,
			State:         string(w.State),
			Started:       w.Started,
			Restarts:      w.Restarts,
			Requests:      w.Requests,
			LastHeartbeat: w.LastHeartbeat,
		})
	}
	return out
}

func (s *status) healthy() bool {
	for _, w := range s.workers() {
		if w.State == "ready" {
			return true
		}
	}
	return false
}

// listenAdmin opens the admin listener, or returns nil when it is "off".
func listenAdmin(cfg Config) (net.Listener, error) {
	if cfg.MetricsBind == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsBind)
	if err != nil {
		return nil, fmt.Errorf("-metrics-bind: %w", err)
	}
	return ln, nil
}

func closeAdmin(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

func adminAddr(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

func adminMux(g metrics.Gatherer, st *status) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(g, metrics.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no worker ready")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /workers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st.workers())
	})
	return mux
}

// startAdmin serves the admin endpoints on ln (if not nil) and returns the
// server to stop later.
func startAdmin(ln net.Listener, g metrics.Gatherer, st *status) *http.Server {
	if ln == nil {
		return nil
	}
	if st.started.IsZero() {
		st.started = time.Now()
	}
	srv := &http.Server{Handler: adminMux(g, st), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv
}

func stopAdmin(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}
