package server

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// serveProfiles serves the admin mux of a run with the workers ws whose
// sockets are in dir, with the profiles on when on is true.
func serveProfiles(t *testing.T, dir string, on bool, ws []prefork.WorkerInfo) string {
	t.Helper()
	workers := func() []prefork.WorkerInfo { return ws }
	st, err := startStatusPage(Config{Workers: len(ws), MetricsBind: "off", AdminPprof: on}, dir, workers, "", newHistory(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	srv := httptest.NewServer(adminMux(g, workers, dir, nil, st.routes))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A worker serves its profiles on a private socket in the run directory;
// the admin listener proxies /debug/pprof/worker/{slot}/ to the slot's
// ready worker, without the admin credentials.
func TestWorkerProfilesThroughTheAdminListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	// A socket left by a killed predecessor with the same id.
	if err := os.WriteFile(pprofSocket(dir, "0a"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := servePprof(Config{AdminPprof: true}, dir, "0a", log)
	defer stop()
	fi, err := os.Stat(pprofSocket(dir, "0a"))
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the worker's socket: %v %v, want a socket of mode 0600", fi.Mode(), err)
	}

	// Slot 2's worker only records what reaches it.
	ln, err := net.Listen("unix", pprofSocket(dir, "2a"))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	fake := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.RequestURI() + " auth=" + r.Header.Get("Authorization")
	})}
	go fake.Serve(ln)
	defer fake.Close()

	base := serveProfiles(t, dir, true, []prefork.WorkerInfo{
		{Slot: 0, ID: "0a", PID: 10, State: prefork.StateReady},
		{Slot: 1, ID: "1a", PID: 11, State: prefork.StateStarting},
		{Slot: 2, ID: "2a", PID: 12, State: prefork.StateReady},
	})
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/debug/pprof/worker/0/goroutine?debug=1", 200, "server.TestWorkerProfilesThroughTheAdminListener"},
		{"/debug/pprof/worker/0/goroutine?debug=2", 200, "goroutine "},
		{"/debug/pprof/worker/0/", 200, `href="goroutine?debug=1"`},
		{"/debug/pprof/worker/0/heap", 200, "\x1f\x8b"}, // gzipped protobuf, for go tool pprof
		{"/debug/pprof/worker/0/profile?seconds=1", 200, "\x1f\x8b"},
		{"/debug/pprof/worker/0/profile?seconds=600", 400, "seconds must be"},
		{"/debug/pprof/worker/0/nosuch", 404, "unknown profile"},
		{"/debug/pprof/worker/1/goroutine?debug=1", 503, "slot 1 has no ready worker"},
		{"/debug/pprof/worker/7/goroutine?debug=1", 404, "no such worker slot"},
		{"/debug/pprof/worker/x/goroutine?debug=1", 404, ""},
		{"/", 200, `<a href="debug/pprof/worker/0/">profiles</a>`},
	} {
		resp, body := getPage(t, base+c.path, "", "")
		if resp.StatusCode != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %s, want %d with %q:\n%.300s", c.path, resp.Status, c.code, c.want, body)
		}
	}
	if resp, _ := getPage(t, base+"/debug/pprof/worker/2/cmdline", "ops", "s3cret"); resp.StatusCode != 200 {
		t.Errorf("slot 2: %s", resp.Status)
	}
	if got := <-seen; got != "/debug/pprof/cmdline auth=" {
		t.Errorf("slot 2's worker got %q, want /debug/pprof/cmdline without the admin credentials", got)
	}

	stop()
	if _, err := os.Stat(pprofSocket(dir, "0a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket outlives the worker's profiles: %v", err)
	}
	if resp, body := getPage(t, base+"/debug/pprof/worker/0/goroutine?debug=1", "", ""); resp.StatusCode != 502 {
		t.Errorf("a worker whose socket is gone: %s %s, want 502", resp.Status, body)
	}
}

// Off by default: no socket, no route.
func TestWorkerProfilesAreOffByDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	servePprof(Config{}, dir, "0a", slog.New(slog.DiscardHandler))()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("without -admin-pprof the run directory has %v", ents)
	}
	base := serveProfiles(t, dir, false, []prefork.WorkerInfo{{Slot: 0, ID: "0a", PID: 10, State: prefork.StateReady}})
	if resp, _ := getPage(t, base+"/debug/pprof/worker/0/goroutine?debug=1", "", ""); resp.StatusCode != 404 {
		t.Errorf("without -admin-pprof: %s, want 404", resp.Status)
	}
	_, page := getPage(t, base+"/", "", "")
	if strings.Contains(page, "debug/pprof") {
		t.Error("without -admin-pprof the status page links to profiles")
	}
}

func TestAdminPprofConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  []string
		want bool
		err  string
	}{
		{nil, nil, false, ""},
		{[]string{"-admin-pprof"}, nil, true, ""},
		{[]string{"-admin-pprof=false"}, []string{"HERD_ADMIN_PPROF=true"}, false, ""},
		{nil, []string{"HERD_ADMIN_PPROF=1"}, true, ""},
		{nil, []string{"HERD_ADMIN_PPROF=yes"}, false, `HERD_ADMIN_PPROF: not true or false: "yes"`},
	} {
		got, _, err := parseWithEnv(t, c.args, c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %q: error %v, want %q", c.args, c.env, err, c.err)
			}
			continue
		}
		if err != nil || got.AdminPprof != c.want {
			t.Errorf("%q %q: AdminPprof %v (%v), want %v", c.args, c.env, got.AdminPprof, err, c.want)
		}
	}
	if _, _, err := parseArgs([]string{"-admin-pprof=maybe"}); err == nil || !strings.Contains(err.Error(), `-admin-pprof: not true or false: "maybe"`) {
		t.Errorf("-admin-pprof=maybe: %v", err)
	}
	if err := (Config{MetricsBind: "off", AdminPprof: true}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "-admin-pprof ") {
		t.Errorf("-admin-pprof without an admin listener: %v", err)
	}
	deep := "/" + strings.Repeat("d", 100)
	_, err := newPprofProxy(deep, nil, false, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "-admin-pprof: ") || !strings.Contains(err.Error(), "-metrics-dir") {
		t.Errorf("a run directory too deep for a socket: %v", err)
	}
}

// In one process (-workers 0) slot 0's profiles are the process's own.
func TestProfilesOfOneProcess(t *testing.T) {
	t.Parallel()
	srv := startQuiet(t, Config{MetricsBind: "127.0.0.1:0", AdminPprof: true}, testApp(nil, nil), nil)
	admin := "http://" + srv.AdminAddr().String()
	resp, body := getPage(t, admin+"/debug/pprof/worker/0/goroutine?debug=1", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, "server.TestProfilesOfOneProcess") {
		t.Errorf("slot 0: %s\n%.500s", resp.Status, body)
	}
	if resp, _ := getPage(t, admin+"/debug/pprof/worker/1/", "", ""); resp.StatusCode != 404 {
		t.Errorf("slot 1 of one process: %s, want 404", resp.Status)
	}
	if ents, _ := filepath.Glob(filepath.Join(srv.RunDir(), "*.sock")); len(ents) != 0 {
		t.Errorf("one process opened sockets %v", ents)
	}
}

// The profiles are served from runtime/pprof: net/http/pprof would put
// them on http.DefaultServeMux, which applications serve.
func TestNothingOnTheDefaultServeMux(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine"} {
		r := httptest.NewRequest("GET", path, nil)
		if _, pattern := http.DefaultServeMux.Handler(r); pattern != "" {
			t.Errorf("http.DefaultServeMux serves %s (pattern %q)", path, pattern)
		}
	}
}
