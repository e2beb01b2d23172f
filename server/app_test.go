package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/metrics"
)

// appRun is one process serving an App on 127.0.0.1:0 through the same
// path as a worker (startServing, serve), stopped by stop.
type appRun struct {
	addr string
	logs *testutil.SyncBuffer
	stop context.CancelFunc
	done chan struct{} // closed when serve returned
	err  error         // serve's result, once done is closed
}

func serveApp(t *testing.T, cfg Config, app App) *appRun {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil)).With("worker", 0, "id", "0a")
	sv, err := startServing(cfg.withDefaults(), t.TempDir(), 0, "0a", app, log, recycle{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &appRun{addr: ln.Addr().String(), logs: logs, stop: stop, done: make(chan struct{})}
	go func() {
		s.err = sv.serve(ctx, []net.Listener{ln}, func() error { return nil }, nil)
		sv.close()
		close(s.done)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not return")
		}
	})
	return s
}

// The App's context ends when the drain begins, while a request is still in
// flight; the OnShutdown functions run only after that request has been
// answered, last registered first, with the drain's deadline, and their
// errors are logged.
func TestOnShutdownRunsAfterTheLastRequestInReverseOrder(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var (
		mu       sync.Mutex
		answered bool
		order    []string
		seen     []string // what each function saw
	)
	appCtxDone := make(chan struct{})
	const graceful = 20 * time.Second
	app := func(w *Worker) (http.Handler, error) {
		go func() {
			<-w.Context().Done()
			close(appCtxDone)
		}()
		for _, name := range []string{"first", "second", "third"} {
			w.OnShutdown(func(ctx context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, name)
				dl, ok := ctx.Deadline()
				seen = append(seen, name+": answered="+boolText(answered)+" deadline="+boolText(ok && time.Until(dl) > graceful/2 && time.Until(dl) <= graceful))
				if name == "second" {
					return errors.New("pool close failed")
				}
				return nil
			})
		}
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			io.WriteString(rw, "done\n")
			mu.Lock()
			answered = true
			mu.Unlock()
		}), nil
	}
	s := serveApp(t, Config{GracefulTimeout: graceful}, app)
	resp := make(chan string, 1)
	go func() {
		r, err := http.Get("http://" + s.addr + "/")
		if err != nil {
			resp <- err.Error()
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		resp <- string(b)
	}()
	<-entered
	s.stop()
	select {
	case <-appCtxDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the App's context did not end when the drain began")
	}
	mu.Lock()
	ran := len(order)
	mu.Unlock()
	if ran != 0 {
		t.Fatalf("%d shutdown functions ran while a request was in flight", ran)
	}
	close(release)
	if got := <-resp; got != "done\n" {
		t.Errorf("the request in flight got %q", got)
	}
	if <-s.done; s.err != nil {
		t.Fatal(s.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "third,second,first" {
		t.Errorf("shutdown functions ran in order %v, want third,second,first", order)
	}
	for _, s := range seen {
		if !strings.HasSuffix(s, "answered=true deadline=true") {
			t.Errorf("shutdown function %s (want it after the answer, with the drain's deadline)", s)
		}
	}
	if l := s.logs.String(); !strings.Contains(l, `msg="shutdown function failed" worker=0 id=0a err="pool close failed"`) {
		t.Errorf("the failed shutdown function is not logged with its worker:\n%s", l)
	}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// A shutdown function that ignores its context is abandoned at the end of
// the graceful timeout: the process stops anyway, and says so.
func TestShutdownFunctionsAreBoundedByTheGracefulTimeout(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	s := serveApp(t, Config{GracefulTimeout: 300 * time.Millisecond}, func(w *Worker) (http.Handler, error) {
		w.OnShutdown(func(context.Context) error { <-hang; return nil })
		return http.NotFoundHandler(), nil
	})
	s.stop()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("a hanging shutdown function kept the process from stopping")
	}
	if !strings.Contains(s.logs.String(), "shutdown functions still running at the end of -graceful-timeout") {
		t.Errorf("no log line about the abandoned function:\n%s", s.logs.String())
	}
}

// An App that fails (error, panic, nil handler) is an ErrApp with its
// message, and the functions it registered before failing run.
func TestAppFailureIsErrAppAndRunsItsCleanup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func() (http.Handler, error)
		want string
	}{
		{"error", func() (http.Handler, error) { return nil, errors.New("database: connection refused") },
			"building the app: database: connection refused"},
		{"panic", func() (http.Handler, error) { panic("config missing") }, "building the app: panic: config missing"},
		{"nil handler", func() (http.Handler, error) { return nil, nil }, "building the app: the App returned a nil handler and no error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cleaned := false
			var logs testutil.SyncBuffer
			_, err := startServing(Config{}.withDefaults(), t.TempDir(), 3, "3b", func(w *Worker) (http.Handler, error) {
				if w.Slot() != 3 || w.ID() != "3b" || w.Registry() == nil {
					t.Errorf("Worker: slot %d id %q registry %v", w.Slot(), w.ID(), w.Registry())
				}
				w.OnShutdown(func(context.Context) error { cleaned = true; return nil })
				return tc.fail()
			}, slog.New(slog.NewTextHandler(&logs, nil)), recycle{})
			if !errors.Is(err, ErrApp) || err.Error() != tc.want {
				t.Errorf("err = %v, want ErrApp %q", err, tc.want)
			}
			if !cleaned {
				t.Error("the function the App registered before failing did not run")
			}
		})
	}
}

// RegistryApp serves an App of the first form, with the process's registry.
func TestRegistryApp(t *testing.T) {
	t.Parallel()
	var got *Worker
	s := serveApp(t, Config{}, func(w *Worker) (http.Handler, error) {
		got = w
		return RegistryApp(func(reg *metrics.Registry) (http.Handler, error) {
			if reg != w.Registry() {
				t.Error("RegistryApp passed another registry")
			}
			return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "old\n") }), nil
		})(w)
	})
	if code, body := get(t, http.DefaultClient, "http://"+s.addr+"/", "", ""); code != 200 || body != "old\n" || got == nil {
		t.Errorf("GET: %d %q", code, body)
	}
}
