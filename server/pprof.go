package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// Profiles of the workers (-admin-pprof). Each worker serves its runtime's
// profiles on a unix socket in the run directory (mode 0600, in a
// directory of mode 0700), and the master's admin listener proxies
// /debug/pprof/worker/{slot}/... to the slot's ready worker, behind the
// admin listener's TLS and basic auth. The endpoints are net/http/pprof's
// (index, the named profiles with ?debug=N, profile, trace, cmdline), so
// `go tool pprof https://admin/debug/pprof/worker/0/heap` works.
//
// They are served from runtime/pprof, not by importing net/http/pprof:
// that package's init registers its handlers on http.DefaultServeMux, which
// would publish the profiles on the application's own port in every
// program that serves DefaultServeMux, with the flag or without it.

// pprofRoute is where the admin listener serves the workers' profiles.
const pprofRoute = "/debug/pprof/worker/"

// maxUnixPath is the longest path a unix socket may have on Linux
// (sun_path is 108 bytes with its terminating NUL).
const maxUnixPath = 107

// pprofSocket is the socket of the worker with file id id in the run
// directory dir. A worker's id is used by one process at a time (prefork
// starts none before its predecessor was reaped), so the socket of a dead
// worker can be replaced by its successor.
func pprofSocket(dir, id string) string { return filepath.Join(dir, "pprof_"+id+".sock") }

// servePprof serves this worker's profiles on its socket when cfg asks
// for it, until the returned function is called. A socket that cannot be
// opened costs the profiles, never the worker: it is logged.
func servePprof(cfg Config, dir, id string, log *slog.Logger) (stop func()) {
	if !cfg.AdminPprof {
		return func() {}
	}
	path := pprofSocket(dir, id)
	os.Remove(path) // left by a predecessor with this id that was killed
	ln, err := net.Listen("unix", path)
	if err == nil {
		// Nobody else can reach into the run directory (0700) before
		// this; the mode keeps the socket private wherever it is copied.
		if err = os.Chmod(path, 0o600); err != nil {
			ln.Close()
		}
	}
	if err != nil {
		log.Error("-admin-pprof: cannot serve this worker's profiles", "err", err)
		return func() {}
	}
	srv := &http.Server{
		Handler:           profileHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return func() {
		srv.Close() // removes the socket
		<-done
	}
}

// profileHandler serves the runtime's profiles under /debug/pprof/.
func profileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/{$}", profileIndex)
	mux.HandleFunc("GET /debug/pprof/{name}", profileNamed)
	mux.HandleFunc("GET /debug/pprof/profile", profileCPU)
	mux.HandleFunc("GET /debug/pprof/trace", profileTrace)
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(os.Args, "\x00"))
	})
	return mux
}

const profileIndexPage = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>profiles of pid {{.PID}}</title></head>
<body><h1>Profiles of worker pid {{.PID}}</h1><table>
{{range .Profiles}}<tr><td>{{.Count}}</td><td><a href="{{.Name}}?debug=1">{{.Name}}</a></td></tr>
{{end}}</table>
<p><a href="goroutine?debug=2">full goroutine stacks</a> · <a href="profile?seconds=10">CPU profile (10 s)</a> ·
<a href="trace?seconds=1">execution trace (1 s)</a> · <a href="cmdline">command line</a></p></body></html>`

func profileIndex(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		Name  string
		Count int
	}
	var es []entry
	for _, p := range pprof.Profiles() {
		es = append(es, entry{p.Name(), p.Count()})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
	t := template.Must(template.New("index").Parse(profileIndexPage))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	t.Execute(w, struct {
		PID      int
		Profiles []entry
	}{os.Getpid(), es})
}

// profileNamed writes a runtime/pprof profile: binary (for go tool pprof)
// or, with ?debug=1 or 2, text; ?gc=1 collects garbage first (heap).
func profileNamed(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if gc, _ := strconv.Atoi(r.FormValue("gc")); gc > 0 && name == "heap" {
		runtime.GC()
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	p.WriteTo(w, debug)
}

// maxProfileSeconds bounds CPU profiles and traces below the admin
// listener's write timeout (60s).
const maxProfileSeconds = 50

func profileSeconds(w http.ResponseWriter, r *http.Request, def int) (time.Duration, bool) {
	s := def
	if v := r.FormValue("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxProfileSeconds {
			http.Error(w, fmt.Sprintf("seconds must be 1..%d", maxProfileSeconds), http.StatusBadRequest)
			return 0, false
		}
		s = n
	}
	return time.Duration(s) * time.Second, true
}

// wait waits for d, or less if the client goes away.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func profileCPU(w http.ResponseWriter, r *http.Request) {
	d, ok := profileSeconds(w, r, 30)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start a CPU profile: "+err.Error(), http.StatusConflict)
		return
	}
	wait(r.Context(), d)
	pprof.StopCPUProfile()
}

func profileTrace(w http.ResponseWriter, r *http.Request) {
	d, ok := profileSeconds(w, r, 1)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start a trace: "+err.Error(), http.StatusConflict)
		return
	}
	wait(r.Context(), d)
	trace.Stop()
}

// newPprofProxy serves pprofRoute+"{slot}/..." from the profiles of the
// slot's ready worker (workers(), sockets in dir), or of this process when
// single (slot 0). An unknown slot is 404, a slot without a ready worker
// 503. Its error (a run directory too deep for a socket) is a
// configuration error.
func newPprofProxy(dir string, workers func() []prefork.WorkerInfo, single bool, log *slog.Logger) (http.Handler, error) {
	if single {
		return singlePprof{profileHandler()}, nil
	}
	if p := pprofSocket(dir, "9999b"); len(p) > maxUnixPath {
		return nil, fmt.Errorf("-admin-pprof: the run directory %s is too deep for the workers' sockets (%d bytes, at most %d); give a shorter -metrics-dir", dir, len(p), maxUnixPath)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The worker is chosen in ServeHTTP and named by the host.
			pr.Out.URL.Scheme = "http"
			pr.Out.Host = ""
			// The admin credentials are the master's business.
			pr.Out.Header.Del("Authorization")
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				id, _, _ := strings.Cut(addr, ":")
				return dialer.DialContext(ctx, "unix", pprofSocket(dir, id))
			},
			// A worker's socket goes with it: nothing to keep open.
			DisableKeepAlives: true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Debug("-admin-pprof: proxying to a worker", "err", err)
			http.Error(w, "this worker's profiles are not reachable: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return pprofProxy{workers: workers, proxy: rp}, nil
}

type pprofProxy struct {
	workers func() []prefork.WorkerInfo
	proxy   *httputil.ReverseProxy
}

func (p pprofProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	slot, err := strconv.Atoi(r.PathValue("slot"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w2, err := readyWorker(p.workers(), slot)
	switch {
	case errors.Is(err, errNoSlot):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := r.Clone(r.Context())
	out.URL.Host = w2.ID
	out.URL.Path = "/debug/pprof/" + r.PathValue("rest")
	out.URL.RawPath = ""
	p.proxy.ServeHTTP(w, out)
}

var errNoSlot = errors.New("no such worker slot")

// readyWorker is the ready worker of slot (the newest, while one replaces
// another).
func readyWorker(ws []prefork.WorkerInfo, slot int) (prefork.WorkerInfo, error) {
	var found prefork.WorkerInfo
	known := false
	for _, w := range ws {
		if w.Slot != slot {
			continue
		}
		known = true
		if w.State == prefork.StateReady && (found.PID == 0 || w.Started.After(found.Started)) {
			found = w
		}
	}
	switch {
	case !known:
		return found, fmt.Errorf("%w: %d", errNoSlot, slot)
	case found.PID == 0:
		return found, fmt.Errorf("slot %d has no ready worker", slot)
	}
	return found, nil
}

// singlePprof serves the one process's own profiles as slot 0.
type singlePprof struct{ h http.Handler }

func (s singlePprof) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("slot") != "0" {
		http.Error(w, errNoSlot.Error()+": "+r.PathValue("slot"), http.StatusNotFound)
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path = "/debug/pprof/" + r.PathValue("rest")
	out.URL.RawPath = ""
	s.h.ServeHTTP(w, out)
}
