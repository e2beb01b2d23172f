package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// listenAdmin opens the admin listener at addr (its connections capped,
// with TLS when sec says so), or returns nil when addr is "off".
func listenAdmin(addr string, sec *adminSecurity) (net.Listener, error) {
	ln, _, err := (&inheritance{}).listenAdmin(addr, sec)
	return ln, err
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

// adminMux routes the admin endpoints of a run: g is /metrics, workers
// answers /workers and /healthz, and dir is the run directory whose free
// space /healthz reports when it runs out; more (if not nil) adds routes
// of its own with protect (the status page). With basic auth, /metrics,
// /workers and more's routes need credentials; /healthz stays open for
// load balancers and probes (it tells nothing but the state of the
// service).
func adminMux(g metrics.Gatherer, workers func() []prefork.WorkerInfo, dir string, sec *adminSecurity, more func(mux *http.ServeMux, protect func(http.Handler) http.Handler)) *http.ServeMux {
	protect := func(h http.Handler) http.Handler { return h }
	if sec != nil && sec.auth != nil {
		protect = sec.auth.wrap
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", protect(metrics.Handler(g, metrics.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !anyReady(workers()) {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no worker ready")
		} else {
			fmt.Fprintln(w, "ok")
		}
		if note := spaceNote(dir); note != "" {
			fmt.Fprintln(w, note)
		}
	})
	mux.Handle("GET /workers", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(workers())
	})))
	if more != nil {
		more(mux, protect)
	}
	return mux
}

func anyReady(ws []prefork.WorkerInfo) bool {
	for _, w := range ws {
		if w.State == prefork.StateReady {
			return true
		}
	}
	return false
}

// startAdmin serves h on ln (if not nil) and returns the server to stop
// later.
//
// Its timeouts are fixed: scrapers and probes send small requests and read
// promptly, and a slow client must not hold the master's resources.
func startAdmin(ln net.Listener, h http.Handler, log *slog.Logger) *http.Server {
	if ln == nil {
		return nil
	}
	srv := &http.Server{
		Handler:           h,
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
