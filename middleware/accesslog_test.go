package middleware_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/middleware"
)

// combinedRE splits a combined-format line the way log collectors do:
// unquoted fields hold no space, quoted fields escape their quotes.
var combinedRE = regexp.MustCompile(`^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$`)

type logLine struct {
	host, ident, user, time, request, status, bytes, referer, agent string
}

func parseLine(t *testing.T, line string) logLine {
	t.Helper()
	m := combinedRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("not a combined log line: %q", line)
	}
	return logLine{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]}
}

func TestAccessLogFields(t *testing.T) {
	body := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) }
	}
	tests := []struct {
		name    string
		req     func() *http.Request
		handler http.Handler
		want    logLine // time is checked separately
	}{
		{
			name: "plain GET",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/hello?x=1", nil)
				r.RemoteAddr = "192.0.2.7:51234"
				return r
			},
			handler: body("hello\n"),
			want:    logLine{"192.0.2.7", "-", "-", "", "GET /hello?x=1 HTTP/1.1", "200", "6", "-", "-"},
		},
		{
			name: "status without body, referer, agent, user, IPv6",
			req: func() *http.Request {
				r := httptest.NewRequest("DELETE", "/users/42", nil)
				r.RemoteAddr = "[2001:db8::1]:443"
				r.Header.Set("Referer", "http://example.com/start")
				r.Header.Set("User-Agent", "curl/8.0")
				r.SetBasicAuth("frank", "secret")
				return r
			},
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
			want:    logLine{"2001:db8::1", "-", "frank", "", "DELETE /users/42 HTTP/1.1", "204", "-", "http://example.com/start", "curl/8.0"},
		},
		{
			name: "not found",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/nope", nil)
				r.RemoteAddr = "127.0.0.1:1"
				return r
			},
			handler: http.NotFoundHandler(),
			want:    logLine{"127.0.0.1", "-", "-", "", "GET /nope HTTP/1.1", "404", "19", "-", "-"},
		},
		{
			name: "handler writes nothing",
			req: func() *http.Request {
				r := httptest.NewRequest("HEAD", "/", nil)
				r.RemoteAddr = "127.0.0.1:1"
				r.Proto = "HTTP/1.0"
				return r
			},
			handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
			want:    logLine{"127.0.0.1", "-", "-", "", "HEAD / HTTP/1.0", "200", "-", "-", "-"},
		},
		{
			name: "escaping",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/q", nil)
				r.RemoteAddr = "127.0.0.1:1"
				r.RequestURI = "/a\"b\\c"
				r.Header.Set("User-Agent", "evil\"agent\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"")
				r.Header.Set("Referer", "caf\u00e9 \xff\x01\x7f")
				r.SetBasicAuth("two words\"", "x")
				return r
			},
			handler: body("x"),
			want: logLine{"127.0.0.1", "-", `two\x20words\"`, "", `GET /a\"b\\c HTTP/1.1`, "200", "1",
				"caf\u00e9 \\xff\\x01\\x7f", `evil\"agent\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			h := middleware.AccessLog(&out)(tt.handler)
			before := time.Now().Truncate(time.Second)
			h.ServeHTTP(httptest.NewRecorder(), tt.req())
			after := time.Now()
			s := out.String()
			if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
				t.Fatalf("want exactly one line, got %q", s)
			}
			got := parseLine(t, strings.TrimSuffix(s, "\n"))
			ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", got.time)
			if err != nil {
				t.Fatalf("time field %q: %v", got.time, err)
			}
			if ts.Before(before) || ts.After(after) {
				t.Errorf("time %v not within [%v, %v]", ts, before, after)
			}
			got.time = ""
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v\nline %q", got, tt.want, s)
			}
		})
	}
}

func TestAccessLogPanicIsLoggedAs500(t *testing.T) {
	var out bytes.Buffer
	h := middleware.AccessLog(&out)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic to go on", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p", nil))
	}()
	got := parseLine(t, strings.TrimSuffix(out.String(), "\n"))
	if got.status != "500" {
		t.Errorf("status %s, want 500", got.status)
	}

	// A status already sent stays what the client saw.
	out.Reset()
	h = middleware.AccessLog(&out)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p", nil))
	}()
	if got := parseLine(t, strings.TrimSuffix(out.String(), "\n")); got.status != "202" {
		t.Errorf("status %s, want 202", got.status)
	}
}

// TestAccessLogConcurrentLinesStayWhole serves real connections in parallel
// through a writer that is not safe for concurrent use; every request must
// give exactly one whole line.
func TestAccessLogConcurrentLinesStayWhole(t *testing.T) {
	var out bytes.Buffer // not safe for concurrent use on purpose
	r := chi.NewRouter()
	r.Use(middleware.AccessLog(&out))
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", chi.URLParam(r, "id"))
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	const n, c = 400, 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += c {
				resp, err := srv.Client().Get(fmt.Sprintf("%s/users/%d", srv.URL, i))
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	srv.Close() // every handler has returned, so every line is written

	seen := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		l := parseLine(t, sc.Text())
		if l.host != "127.0.0.1" || l.status != "200" || !strings.HasPrefix(l.request, "GET /users/") || l.agent != "Go-http-client/1.1" {
			t.Errorf("unexpected line %q", sc.Text())
		}
		want := len("user \n") + len(strings.TrimSuffix(strings.TrimPrefix(l.request, "GET /users/"), " HTTP/1.1"))
		if l.bytes != fmt.Sprint(want) {
			t.Errorf("bytes %s, want %d in %q", l.bytes, want, sc.Text())
		}
		seen[l.request] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct request lines logged, want %d", len(seen), n)
	}
}

// TestAccessLogKeepsOptionalInterfaces: the wrapped writer offers Flusher
// (and, through http.ResponseController, flushing) exactly when the
// original does, and never claims a Hijacker that the original lacks.
func TestAccessLogKeepsOptionalInterfaces(t *testing.T) {
	var out bytes.Buffer
	flushed := false
	h := middleware.AccessLog(&out)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		if _, ok := w.(http.Hijacker); ok {
			t.Error("the wrapper claims http.Hijacker, which the recorder does not have")
		}
		f, ok := w.(http.Flusher)
		if !ok {
			t.Fatal("the wrapper hides http.Flusher")
		}
		f.Flush()
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush through the access log: %v", err)
		}
		flushed = true
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/stream", nil))
	if !flushed || !rec.Flushed {
		t.Error("the recorder was not flushed")
	}
	if got := parseLine(t, strings.TrimSuffix(out.String(), "\n")); got.bytes != "4" {
		t.Errorf("bytes %s, want 4", got.bytes)
	}
}

func ExampleAccessLog() {
	r := chi.NewRouter()
	r.Use(middleware.AccessLog(os.Stdout)) // first, so it sees the request as sent
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	_ = http.ListenAndServe("127.0.0.1:8080", r)
}

func BenchmarkAccessLog(b *testing.B) {
	h := middleware.AccessLog(io.Discard)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	}))
	r := httptest.NewRequest("GET", "/hello", nil)
	r.Header.Set("User-Agent", "wrk")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// splitRecords splits s where any common log reader ends a line: \n, \r,
// \v, \f, the C0 separators \x1c-\x1e (Python's str.splitlines), U+0085
// NEL, U+2028 and U+2029 (JavaScript and Python too).
func splitRecords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			return true
		}
		return false
	})
}

// TestAccessLogNoForgedLines sends, over a real connection, a request whose
// URI, user and User-Agent carry Unicode line separators and C1 controls
// followed by a whole forged record: every reader must still see exactly
// one record per request.
func TestAccessLogNoForgedLines(t *testing.T) {
	t.Parallel()
	out := new(testutil.SyncBuffer)
	done := make(chan struct{}, 1)
	srv := httptest.NewServer(served(middleware.AccessLog(out)(http.HandlerFunc(ok)), done))
	defer srv.Close()

	const forged = `10.6.6.6 - admin [01/Jan/2030:00:00:00 +0000] "GET /admin HTTP/1.1" 200 1 "-" "-"`
	breaks := []string{"\u0085", "\u2028", "\u2029", "\u0080", "\u009f", "\u202e"} // NEL, LS, PS, C1 controls, RLO
	for _, br := range breaks {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		user := base64.StdEncoding.EncodeToString([]byte("u" + br + forged + ":pw"))
		fmt.Fprintf(conn, "GET /x%s HTTP/1.1\r\nHost: h\r\nAuthorization: Basic %s\r\nUser-Agent: a%s%s\r\nConnection: close\r\n\r\n",
			br+strings.ReplaceAll(forged, " ", "%20"), user, br, forged)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%q: status %d", br, resp.StatusCode)
		}
		<-done
	}
	records := splitRecords(out.String())
	if len(records) != len(breaks) {
		t.Fatalf("%d records for %d requests:\n%s", len(records), len(breaks), strings.Join(records, "\n"))
	}
	for i, rec := range records {
		l := parseLine(t, rec)
		if l.host != "127.0.0.1" || l.status != "200" {
			t.Errorf("record %d: %+v", i, l)
		}
		esc := ""
		for _, b := range []byte(breaks[i]) {
			esc += fmt.Sprintf(`\x%02x`, b)
		}
		for field, v := range map[string]string{"request": l.request, "user": l.user, "agent": l.agent} {
			if !strings.Contains(v, esc) {
				t.Errorf("record %d: %s %q does not hold %q escaped as %s", i, field, v, breaks[i], esc)
			}
		}
	}
}
