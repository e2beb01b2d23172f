package middleware_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

// served wraps h so that done is signalled once the whole chain, the
// middleware's recording included, has returned.
func served(h http.Handler, done chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	})
}

// TestHijackedConnectionIsCounted upgrades a real connection, the way a
// websocket library does, and finds it counted as 101 under its route.
func TestHijackedConnectionIsCounted(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/ws/{room}", func(w http.ResponseWriter, r *http.Request) {
		h, ok := w.(http.Hijacker)
		if !ok {
			t.Error("the middleware hides http.Hijacker on HTTP/1.1")
			return
		}
		conn, buf, err := h.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		buf.Flush()
		line, _ := buf.ReadString('\n')
		buf.WriteString(line)
		buf.Flush()
	})
	done := make(chan struct{}, 1)
	srv := httptest.NewServer(served(r, done))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws/lobby HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	io.WriteString(conn, "ping\n")
	if echo, _ := br.ReadString('\n'); echo != "ping\n" {
		t.Errorf("echo %q", echo)
	}
	<-done
	if got := metricstest.Value(t, reg, "http_requests_total", "method", "GET", "route", "/ws/{room}", "code", "101"); got != 1 {
		t.Errorf("hijacked request counted %v times, want 1", got)
	}
	if got := metricstest.Value(t, reg, "http_requests_in_flight"); got != 0 {
		t.Errorf("in flight %v, want 0", got)
	}
}

// TestStreamingOverRealServers: over HTTP/1.1 the handler sees Flusher,
// Hijacker and ReaderFrom; over HTTP/2 it sees Flusher and Pusher but no
// Hijacker, exactly as without the middleware.
func TestStreamingOverRealServers(t *testing.T) {
	t.Parallel()
	type offered struct{ flusher, hijacker, readerFrom, pusher bool }
	probe := func(w http.ResponseWriter) offered {
		_, f := w.(http.Flusher)
		_, h := w.(http.Hijacker)
		_, rf := w.(io.ReaderFrom)
		_, p := w.(http.Pusher)
		return offered{f, h, rf, p}
	}
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := metricstest.NewRegistry(t)
			mw := middleware.Instrument(reg)
			bare := make(chan offered, 1)
			wrapped := make(chan offered, 1)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /bare", func(w http.ResponseWriter, r *http.Request) { bare <- probe(w) })
			mux.Handle("GET /stream", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wrapped <- probe(w)
				for _, part := range []string{"a", "b", "c"} {
					io.WriteString(w, part)
					if err := http.NewResponseController(w).Flush(); err != nil {
						t.Errorf("flush: %v", err)
					}
				}
			})))
			srv := httptest.NewUnstartedServer(mux)
			if h2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			c := srv.Client()
			for _, path := range []string{"/bare", "/stream"} {
				resp, err := c.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("protocol %s", resp.Proto)
				}
				if path == "/stream" && string(body) != "abc" {
					t.Errorf("body %q", body)
				}
			}
			b, w := <-bare, <-wrapped
			if b != w {
				t.Errorf("handler sees %+v through the middleware, %+v without", w, b)
			}
			if !w.flusher || w.hijacker == h2 {
				t.Errorf("unexpected interfaces %+v", w)
			}
		})
	}
}

// TestServeMuxRealServer: the pattern is read after the handler, on a real
// server where ServeMux sets it on the request the middleware holds.
func TestServeMuxRealServer(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", ok)
	done := make(chan struct{}, 1)
	srv := httptest.NewServer(served(middleware.Instrument(reg)(mux), done))
	defer srv.Close()
	for _, p := range []string{"/users/1", "/users/2", "/" + strings.Repeat("x", 10)} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		<-done
	}
	if got := metricstest.Value(t, reg, "http_requests_total", "method", "GET", "route", "/users/{id}", "code", "200"); got != 2 {
		t.Errorf("got %v, want 2", got)
	}
	if got := metricstest.Value(t, reg, "http_requests_total", "method", "GET", "route", middleware.UnmatchedRoute, "code", "404"); got != 1 {
		t.Errorf("got %v, want 1", got)
	}
}
