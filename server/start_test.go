package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// A test learns where Start's server listens and keeps its files, and
// nothing of it is left after Shutdown.
func TestStartTellsWhereItServesAndShutdownCleansUp(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	srv, err := Start(context.Background(), Config{Bind: []string{"127.0.0.1:0"}, MetricsBind: "127.0.0.1:0", MetricsDir: parent,
		Logger: slog.New(slog.DiscardHandler)}, testApp(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	addrs := srv.Addrs()
	if len(addrs) != 1 || addrs[0].(*net.TCPAddr).Port == 0 || srv.URL() != "http://"+addrs[0].String() {
		t.Fatalf("Addrs %v, URL %s", addrs, srv.URL())
	}
	if code, body := get(t, http.DefaultClient, srv.URL()+"/hello", "", ""); code != 200 || body != "hello\n" {
		t.Errorf("GET /hello: %d %q (served as soon as Start returned)", code, body)
	}
	admin := "http://" + srv.AdminAddr().String()
	if code, _ := get(t, http.DefaultClient, admin+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz: %d right after Start", code)
	}
	if filepath.Dir(srv.RunDir()) != parent {
		t.Errorf("RunDir %s not in %s", srv.RunDir(), parent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := os.Stat(srv.RunDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory left after Shutdown: %v", err)
	}
	for _, a := range []string{addrs[0].String(), srv.AdminAddr().String()} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Shutdown", a)
		}
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("Wait after a clean Shutdown: %v", err)
	}
}

// What Start cannot start is its error, and nothing is left running.
func TestStartReturnsWhatStopsTheStart(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	_, err := Start(context.Background(), Config{Bind: []string{"127.0.0.1:0"}, MetricsBind: "off", MetricsDir: parent, Logger: quiet,
		ListenerMode: "fork"}, testApp(nil, nil))
	if !errors.Is(err, ErrConfig) {
		t.Errorf("bad configuration: %v, want ErrConfig", err)
	}
	_, err = Start(context.Background(), Config{Bind: []string{"127.0.0.1:0"}, MetricsBind: "off", MetricsDir: parent, Logger: quiet},
		func(*Worker) (http.Handler, error) { return nil, errors.New("no database") })
	if !errors.Is(err, ErrApp) || err.Error() != "building the app: no database" {
		t.Errorf("failing App: %v, want ErrApp", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("left in the metrics directory: %v", ents)
	}
}

// The ctx given to Start stops the server as Shutdown does.
func TestStartStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, Config{Bind: []string{"127.0.0.1:0"}, MetricsBind: "off", MetricsDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)}, testApp(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if srv.AdminAddr() != nil {
		t.Errorf("AdminAddr %v with -metrics-bind off", srv.AdminAddr())
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop when Start's ctx ended")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if resp, err := c.Get(srv.URL()); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Error("still serving")
	}
}

// A process without workers serves a TCP address and a unix socket, TCP
// first, and removes the socket's file when it stops.
func TestStartOnTCPAndUnixSocket(t *testing.T) {
	t.Parallel()
	dir := testutil.SockDir(t)
	sock := filepath.Join(dir, "app.sock")
	srv, err := Start(context.Background(), Config{Bind: []string{"unix:" + sock, "127.0.0.1:0"}, BindMode: 0o600,
		MetricsBind: "off", MetricsDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}, testApp(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	as := srv.Addrs()
	if len(as) != 2 || as[0].Network() != "tcp" || as[1].String() != sock {
		t.Fatalf("Addrs %v", as)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file %v %v", fi, err)
	}
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for _, c := range []struct {
		client *http.Client
		url    string
	}{{uc, "http://herd/hello"}, {http.DefaultClient, srv.URL() + "/hello"}} {
		if code, body := get(t, c.client, c.url, "", ""); code != 200 || body != "hello\n" {
			t.Errorf("GET %s: %d %q", c.url, code, body)
		}
	}
	uc.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left: %v", err)
	}
}
