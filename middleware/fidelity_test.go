package middleware_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
)

// What the metrics and the access log record must be what the client got,
// on a real server.

// logLines parses every access log line of buf, by request path.
func logLines(t *testing.T, buf *testutil.SyncBuffer) map[string]logLine {
	t.Helper()
	out := map[string]logLine{}
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		l := parseLine(t, sc.Text())
		method, rest, _ := strings.Cut(l.request, " ")
		path, _, _ := strings.Cut(rest, " ")
		out[method+" "+path] = l
	}
	return out
}

// recorded is a real server with both recorders (the access log outside,
// the instrumentation inside) around a chi router built by routes.
type recorded struct {
	srv    *httptest.Server
	reg    *metrics.Registry
	access *testutil.SyncBuffer
	errlog *testutil.SyncBuffer // the server's ErrorLog
	done   chan struct{}
}

func newRecorded(t *testing.T, h2 bool, routes func(r chi.Router)) *recorded {
	t.Helper()
	rs := &recorded{access: new(testutil.SyncBuffer), errlog: new(testutil.SyncBuffer), done: make(chan struct{}, 16)}
	var mw func(http.Handler) http.Handler
	rs.reg, mw = instrumented(t, middleware.Opts{ResponseSize: true})
	r := chi.NewRouter()
	r.Use(middleware.AccessLog(rs.access), mw)
	routes(r)
	rs.srv = httptest.NewUnstartedServer(served(r, rs.done))
	rs.srv.Config.ErrorLog = log.New(rs.errlog, "", 0)
	if h2 {
		rs.srv.EnableHTTP2 = true
		rs.srv.StartTLS()
	} else {
		rs.srv.Start()
	}
	t.Cleanup(rs.srv.Close)
	return rs
}

// do sends one request, reads the whole answer and waits until both
// recorders have recorded it. It returns the status (0 when the client got
// no response) and the body bytes read.
func (rs *recorded) do(t *testing.T, method, path string, header ...string) (int, int) {
	t.Helper()
	req, err := http.NewRequest(method, rs.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	code, n := 0, 0
	resp, err := rs.srv.Client().Do(req)
	if err == nil {
		code = resp.StatusCode
		b, _ := io.ReadAll(resp.Body) // may fail: the handler panicked mid-body
		n = len(b)
		resp.Body.Close()
	}
	select {
	case <-rs.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s %s: handler chain did not return", method, path)
	}
	return code, n
}

// TestHeadRecordsNoBody: net/http sends no body for HEAD, whatever the
// handler writes; the size histogram and the access log say 0.
func TestHeadRecordsNoBody(t *testing.T) {
	t.Parallel()
	rs := newRecorded(t, false, func(r chi.Router) {
		r.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello world") })
		r.HandleFunc("/copy", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, strings.NewReader("hello world")) // through ReadFrom
		})
	})
	for _, path := range []string{"/body", "/copy"} {
		if code, n := rs.do(t, "HEAD", path); code != 200 || n != 0 {
			t.Fatalf("HEAD %s: %d with %d body bytes", path, code, n)
		}
		if code, n := rs.do(t, "GET", path); code != 200 || n != 11 {
			t.Fatalf("GET %s: %d with %d body bytes", path, code, n)
		}
		if got := metricstest.Value(t, rs.reg, "http_response_size_bytes_sum", "method", "HEAD", "route", path); got != 0 {
			t.Errorf("HEAD %s: %v bytes in the size histogram, want 0", path, got)
		}
		if got := metricstest.Value(t, rs.reg, "http_response_size_bytes_count", "method", "HEAD", "route", path); got != 1 {
			t.Errorf("HEAD %s: %v observations, want 1", path, got)
		}
		if got := metricstest.Value(t, rs.reg, "http_response_size_bytes_sum", "method", "GET", "route", path); got != 11 {
			t.Errorf("GET %s: %v bytes in the size histogram, want 11", path, got)
		}
	}
	lines := logLines(t, rs.access)
	for _, path := range []string{"/body", "/copy"} {
		if got := lines["HEAD "+path].bytes; got != "-" {
			t.Errorf("access log HEAD %s: bytes %q, want -", path, got)
		}
		if got := lines["GET "+path].bytes; got != "11" {
			t.Errorf("access log GET %s: bytes %q, want 11", path, got)
		}
	}
}

// TestPanicRecordsWhatTheClientGot: a handler that panics after its status
// went out is recorded with that status by both recorders; 500 only when no
// status was written.
func TestPanicRecordsWhatTheClientGot(t *testing.T) {
	t.Parallel()
	partial := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
	}
	rs := newRecorded(t, false, func(r chi.Router) {
		r.Get("/late", func(w http.ResponseWriter, r *http.Request) { partial(w); panic("late") })
		r.Get("/abort", func(w http.ResponseWriter, r *http.Request) { partial(w); panic(http.ErrAbortHandler) })
		r.Get("/created", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.(http.Flusher).Flush()
			panic("after 201")
		})
		r.Get("/early", func(w http.ResponseWriter, r *http.Request) { panic("early") })
	})
	for _, c := range []struct {
		path       string
		client     int // what the client got; 0: no response
		recordedAs int
	}{
		{"/late", 200, 200},
		{"/abort", 200, 200},
		{"/created", 201, 201},
		{"/early", 0, 500}, // the connection closed without a response
	} {
		if code, _ := rs.do(t, "GET", c.path); code != c.client {
			t.Fatalf("GET %s: the client got %d, want %d", c.path, code, c.client)
		}
		if got := requests(t, rs.reg, "GET", c.path, c.recordedAs); got != 1 {
			t.Errorf("GET %s: counted %v times with code %d, want once:\n%s", c.path, got, c.recordedAs, text(t, rs.reg, "http_requests_total"))
		}
		if got := logLines(t, rs.access)["GET "+c.path].status; got != fmt.Sprint(c.recordedAs) {
			t.Errorf("GET %s: access log status %s, want %d", c.path, got, c.recordedAs)
		}
	}
	if got := metricstest.Value(t, rs.reg, "http_requests_in_flight"); got != 0 {
		t.Errorf("in flight %v after the panics, want 0", got)
	}
}

// nextLine returns "(file:line)" of the line after its caller's, as
// net/http's log line spells a caller.
func nextLine() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("(%s:%d)", filepath.Base(file), line+1)
}

// TestSuperfluousWriteHeaderNamesTheApp: net/http's log line about a second
// WriteHeader names the application's line, not herd's wrapper, through
// one or both recorders and through net/http's helpers; the status recorded
// is the first one, the one the client got.
func TestSuperfluousWriteHeaderNamesTheApp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	where := map[string]string{} // route: the line of its second WriteHeader
	mark := func(route, at string) {
		mu.Lock()
		defer mu.Unlock()
		where[route] = at
	}
	rs := newRecorded(t, false, func(r chi.Router) {
		r.Get("/twice", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			mark("/twice", nextLine())
			w.WriteHeader(http.StatusTeapot)
		})
		r.Get("/error", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body")
			mark("/error", nextLine())
			http.Error(w, "late", http.StatusInternalServerError)
		})
		r.Get("/hijacked", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 204 No Content\r\n\r\n")
			buf.Flush()
			mark("/hijacked", nextLine())
			w.WriteHeader(http.StatusOK)
		})
	})
	// Only the instrumentation, without the access log.
	inner := chi.NewRouter()
	reg2, mw := instrumented(t, middleware.Opts{})
	inner.Use(mw)
	inner.Get("/inner", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		mark("/inner", nextLine())
		w.WriteHeader(http.StatusTeapot)
	})
	done2 := make(chan struct{}, 1)
	errlog2 := new(testutil.SyncBuffer)
	srv2 := httptest.NewUnstartedServer(served(inner, done2))
	srv2.Config.ErrorLog = log.New(errlog2, "", 0)
	srv2.Start()
	defer srv2.Close()

	if code, _ := rs.do(t, "GET", "/twice"); code != http.StatusAccepted {
		t.Errorf("/twice: client got %d, want 202", code)
	}
	if code, _ := rs.do(t, "GET", "/error"); code != http.StatusOK {
		t.Errorf("/error: client got %d, want 200", code)
	}
	if code, _ := rs.do(t, "GET", "/hijacked"); code != http.StatusNoContent {
		t.Errorf("/hijacked: client got %d, want 204", code)
	}
	resp, err := srv2.Client().Get(srv2.URL + "/inner")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-done2

	check := func(log, route, what string) {
		t.Helper()
		mu.Lock()
		at := where[route]
		mu.Unlock()
		want := "http: " + what + " from github.com/herdhttp/herd/middleware_test.TestSuperfluousWriteHeaderNamesTheApp."
		var found []string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, what) {
				found = append(found, l)
			}
		}
		for _, l := range found {
			if strings.HasPrefix(l, want) && strings.HasSuffix(l, " "+at) {
				return
			}
		}
		t.Errorf("%s: no line %q...%q in the server's log; lines about it:\n%s", route, want, at, strings.Join(found, "\n"))
	}
	check(rs.errlog.String(), "/twice", "superfluous response.WriteHeader call")
	check(rs.errlog.String(), "/error", "superfluous response.WriteHeader call")
	check(rs.errlog.String(), "/hijacked", "response.WriteHeader on hijacked connection")
	check(errlog2.String(), "/inner", "superfluous response.WriteHeader call")
	if n := strings.Count(rs.errlog.String(), "\n"); n != 3 {
		t.Errorf("%d lines in the server's log, want 3 (one per request):\n%s", n, rs.errlog.String())
	}

	if got := requests(t, rs.reg, "GET", "/twice", 202); got != 1 {
		t.Errorf("/twice: counted %v as 202, want 1:\n%s", got, text(t, rs.reg, "http_requests_total"))
	}
	if got := requests(t, rs.reg, "GET", "/error", 200); got != 1 {
		t.Errorf("/error: counted %v as 200, want 1", got)
	}
	if got := requests(t, reg2, "GET", "/inner", 202); got != 1 {
		t.Errorf("/inner: counted %v as 202, want 1", got)
	}
	lines := logLines(t, rs.access)
	if got := lines["GET /twice"].status; got != "202" {
		t.Errorf("/twice: access log status %s, want 202", got)
	}
	if got := lines["GET /error"].status; got != "200" {
		t.Errorf("/error: access log status %s, want 200", got)
	}
}

// TestSuperfluousWriteHeaderHTTP2: net/http's HTTP/2 server ignores a
// second WriteHeader without a word; so does the middleware.
func TestSuperfluousWriteHeaderHTTP2(t *testing.T) {
	t.Parallel()
	rs := newRecorded(t, true, func(r chi.Router) {
		r.Get("/twice", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			w.WriteHeader(http.StatusTeapot)
		})
	})
	if code, _ := rs.do(t, "GET", "/twice"); code != http.StatusAccepted {
		t.Errorf("client got %d, want 202", code)
	}
	if s := rs.errlog.String(); s != "" {
		t.Errorf("server log %q, want nothing", s)
	}
	if got := requests(t, rs.reg, "GET", "/twice", 202); got != 1 {
		t.Errorf("counted %v as 202, want 1", got)
	}
}

// TestResponseSizeAndCompress: the size histogram records the bytes that
// went through herd's writer: compressed when chi's Compress is inside
// herd's middleware, uncompressed when it is outside.
func TestResponseSizeAndCompress(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("compressible text ", 500)
	for _, compressInside := range []bool{true, false} {
		t.Run(fmt.Sprintf("compressInside=%v", compressInside), func(t *testing.T) {
			t.Parallel()
			reg, mw := instrumented(t, middleware.Opts{ResponseSize: true})
			r := chi.NewRouter()
			if compressInside {
				r.Use(mw, chimw.Compress(5))
			} else {
				r.Use(chimw.Compress(5), mw)
			}
			r.Get("/text", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, body)
			})
			done := make(chan struct{}, 1)
			srv := httptest.NewServer(served(r, done))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/text", nil)
			req.Header.Set("Accept-Encoding", "gzip") // set by hand: the client does not decompress
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			<-done
			if resp.Header.Get("Content-Encoding") != "gzip" || len(sent) >= len(body) {
				t.Fatalf("not compressed: %q, %d bytes", resp.Header.Get("Content-Encoding"), len(sent))
			}
			want := float64(len(body))
			if compressInside {
				want = float64(len(sent))
			}
			if got := metricstest.Value(t, reg, "http_response_size_bytes_sum", "method", "GET", "route", "/text"); got != want {
				t.Errorf("size %v, want %v (%d sent, %d written by the handler)", got, want, len(sent), len(body))
			}
		})
	}
}

// TestMaxBytesReaderConnection: http.MaxBytesReader over net/http's own
// writer makes the server close the connection after the 413; over herd's
// writer it cannot (net/http's hook is unexported) and the connection stays
// open. Applying the limit outside herd's middleware, or answering with
// "Connection: close", closes it.
func TestMaxBytesReaderConnection(t *testing.T) {
	t.Parallel()
	upload := func(closeOnLimit bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 10)
			if _, err := io.ReadAll(r.Body); err != nil {
				var tooLarge *http.MaxBytesError
				if closeOnLimit && errors.As(err, &tooLarge) {
					w.Header().Set("Connection", "close")
				}
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			}
		}
	}
	// chain builds the application; the upload handler reads the body
	// unless the limit was set outside.
	for _, c := range []struct {
		name       string
		handler    func(reg *metrics.Registry) http.Handler
		wantClosed bool
	}{
		{"net/http alone", func(*metrics.Registry) http.Handler { return upload(false) }, true},
		{"limit inside herd", func(reg *metrics.Registry) http.Handler {
			return middleware.Instrument(reg)(upload(false))
		}, false},
		{"limit inside herd, Connection: close", func(reg *metrics.Registry) http.Handler {
			return middleware.Instrument(reg)(upload(true))
		}, true},
		{"limit outside herd (chi RequestSize)", func(reg *metrics.Registry) http.Handler {
			r := chi.NewRouter()
			r.Use(chimw.RequestSize(10), middleware.Instrument(reg))
			r.Post("/upload", func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.ReadAll(r.Body); err != nil {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				}
			})
			return r
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(c.handler(metricstest.NewRegistry(t)))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(conn)
			io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 100))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
			// A second request on the same connection: answered if it
			// stayed open, EOF if the server closed it.
			io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
			_, err = http.ReadResponse(br, nil)
			if closed := err != nil; closed != c.wantClosed {
				t.Errorf("connection closed after the 413: %v (%v), want %v", closed, err, c.wantClosed)
			}
		})
	}
}
