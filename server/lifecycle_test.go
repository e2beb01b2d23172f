package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/prefork"
)

// testApp serves /hello, and /slow, which waits until release is closed.
func testApp(entered chan<- struct{}, release <-chan struct{}) App {
	return func(w *Worker) (http.Handler, error) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
		mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
			io.WriteString(w, "slow\n")
		})
		return middleware.Instrument(w.Registry())(mux), nil
	}
}

// A process told to stop finishes the request in flight, closes its idle
// keep-alive connection, accepts nothing new, and counts every request.
func TestInProcessDrainLosesNothing(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	dir := t.TempDir()
	cfg := Config{GracefulTimeout: 20 * time.Second}.withDefaults()
	sv, err := startServing(cfg, dir, 0, "0a", testApp(entered, release), slog.New(slog.DiscardHandler), recycle{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- sv.serve(ctx, []net.Listener{ln}, func() error { return nil }, nil)
		sv.close()
	}()

	// An idle keep-alive connection: one request answered, then quiet.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleReader := bufio.NewReader(idle)
	io.WriteString(idle, "GET /hello HTTP/1.1\r\nHost: herd\r\n\r\n")
	if resp, err := http.ReadResponse(idleReader, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request on the keep-alive connection: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	// A request in flight when the stop comes.
	slow := make(chan *http.Response, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/slow")
		if err != nil {
			t.Error(err)
			slow <- nil
			return
		}
		slow <- resp
	}()
	<-entered
	stop()

	testutil.EventuallyTrue(t, 10*time.Second, "new connections refused", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idleReader.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection: %v, want it closed by the server", err)
	}
	select {
	case err := <-served:
		t.Fatalf("serve returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if resp := <-slow; resp != nil {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "slow\n" {
			t.Errorf("the request in flight got %d %q", resp.StatusCode, b)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	for _, route := range []string{"/hello", "/slow"} {
		if got := metricstest.Value(t, g, "http_requests_total", "code", "200", "method", "GET", "route", route); got != 1 {
			t.Errorf("http_requests_total{route=%q} = %v, want 1", route, got)
		}
	}
}

var (
	bindRE  = regexp.MustCompile(` bind=(\S+)`)
	adminRE = regexp.MustCompile(` admin=(\S+)`)
	dirRE   = regexp.MustCompile(` metrics_dir=(\S+)`)
)

// The whole lifecycle in this process (Workers == 0): configuration,
// run directory, pidfile, admin endpoints, serving, and the clean-up after
// ctx ends it.
func TestRunInProcess(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	pidfile := filepath.Join(t.TempDir(), "herd.pid")
	s, err := Config{Bind: []string{"127.0.0.1:0"}, MetricsBind: "127.0.0.1:0", MetricsDir: parent, PIDFile: pidfile}.validate()
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, s, testApp(nil, nil), runEnv{}, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	var line string
	testutil.EventuallyTrue(t, 10*time.Second, "the start line", func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "serving in one process") {
				line = l
			}
		}
		return line != ""
	})
	app, admin, dir := bindRE.FindStringSubmatch(line)[1], adminRE.FindStringSubmatch(line)[1], dirRE.FindStringSubmatch(line)[1]
	if filepath.Dir(dir) != parent {
		t.Errorf("run directory %s not in %s", dir, parent)
	}
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pidfile holds %q, want %d", b, os.Getpid())
	}
	fetch := func(url string) (int, string) { return get(t, http.DefaultClient, url, "", "") }
	testutil.EventuallyTrue(t, 10*time.Second, "healthz ok", func() bool { code, _ := fetch("http://" + admin + "/healthz"); return code == 200 })
	if code, body := fetch("http://" + app + "/hello"); code != 200 || body != "hello\n" {
		t.Fatalf("GET /hello: %d %q", code, body)
	}
	_, body := fetch("http://" + admin + "/workers")
	var ws []prefork.WorkerInfo
	if err := json.Unmarshal([]byte(body), &ws); err != nil || len(ws) != 1 || ws[0].ID != "0a" || ws[0].PID != os.Getpid() ||
		ws[0].State != prefork.StateReady || ws[0].Requests != 1 {
		t.Errorf("/workers: %s (%v)", body, err)
	}
	if _, body := fetch("http://" + admin + "/metrics"); !strings.Contains(body, `http_requests_total{code="200",method="GET",route="/hello"} 1`) ||
		!strings.Contains(body, `herd_process_goroutines{pid="0a"}`) || !strings.Contains(body, "herd_metrics_dir_free_bytes ") {
		t.Errorf("/metrics:\n%s", body)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after ctx ended")
	}
	for _, p := range []string{dir, pidfile} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	for _, a := range []string{app, admin} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", a)
		}
	}
	if !strings.Contains(logs.String(), "msg=configuration bind=127.0.0.1:0 workers=0") {
		t.Errorf("no configuration line:\n%s", logs.String())
	}
}
