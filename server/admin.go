package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
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

// listenAdmin opens the admin listener (with TLS when sec says so), or
// returns nil when it is "off".
func listenAdmin(cfg Config, sec *adminSecurity) (net.Listener, error) {
	if cfg.MetricsBind == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsBind)
	if err != nil {
		return nil, fmt.Errorf("-metrics-bind: %w", err)
	}
	ln = limitConns(ln, adminMaxConns())
	if sec != nil && sec.tls != nil {
		ln = tls.NewListener(ln, sec.tls)
	}
	return ln, nil
}

// warnExposedAdmin logs when the admin listener is reachable from other
// hosts without the protection that makes that safe.
func warnExposedAdmin(ln net.Listener, sec *adminSecurity, log *slog.Logger) {
	if ln == nil {
		return
	}
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() {
		return
	}
	switch {
	case sec.auth != nil && sec.tls == nil:
		log.Warn("admin listener: basic auth without TLS sends passwords in clear text over the network", "admin", ta.String())
	case sec.auth == nil && sec.tls == nil:
		log.Warn("admin listener is not on loopback and has no authentication: /metrics and /workers are open to the network", "admin", ta.String())
	}
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

// adminMux routes the admin endpoints. With basic auth, /metrics and
// /workers need credentials; /healthz stays open for load balancers and
// probes (it tells nothing but "ok").
func adminMux(g metrics.Gatherer, st *status, sec *adminSecurity) *http.ServeMux {
	protect := func(h http.Handler) http.Handler { return h }
	if sec != nil && sec.auth != nil {
		protect = sec.auth.wrap
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", protect(metrics.Handler(g, metrics.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no worker ready")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /workers", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st.workers())
	})))
	return mux
}

// startAdmin serves the admin endpoints on ln (if not nil) and returns the
// server to stop later.
//
// Its timeouts are fixed: scrapers and probes send small requests and read
// promptly, and a slow client must not hold the master's resources.
func startAdmin(ln net.Listener, g metrics.Gatherer, st *status, sec *adminSecurity, log *slog.Logger) *http.Server {
	if ln == nil {
		return nil
	}
	if st.started.IsZero() {
		st.started = time.Now()
	}
	srv := &http.Server{
		Handler:           adminMux(g, st, sec),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake failures (scanners, wrong CA) are the client's
		// problem; keep them out of the master's log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
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
