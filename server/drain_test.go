package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// serveDrainer serves h through a drainer with cfg on 127.0.0.1:0.
func serveDrainer(t *testing.T, cfg Config, h http.Handler) string {
	t.Helper()
	d, addr := startDrainerWith(t, cfg, h)
	t.Cleanup(func() { d.drain(time.Second) })
	return addr
}

func TestReadTimeoutEndsASlowBody(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	addr := serveDrainer(t, Config{ReadTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: herd\r\nContent-Length: 1000000\r\n\r\n")
	go func() {
		for range 50 {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read the whole slow body")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the slow body was cut after %s, want about 300ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a body trickled one byte every 100ms was still being read after 5 s")
	}
}

func TestWriteTimeoutEndsASlowReader(t *testing.T) {
	t.Parallel()
	wrote := make(chan error, 1)
	addr := serveDrainer(t, Config{WriteTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1000 { // 64 MB: far more than the socket buffers
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: herd\r\n\r\n")
	// Never read the response.
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("64 MB written to a client that reads nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was still writing to a client that reads nothing after 5 s")
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	addr := serveDrainer(t, Config{MaxHeaderBytes: 1024}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct{ size, want int }{{100, 200}, {8192, 431}} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: herd\r\nX-Big: %0*d\r\n\r\n", tc.size, 0)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("header of %d bytes: %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// startDrainer serves h through a drainer with the default configuration on
// 127.0.0.1:0; the test drains it.
func startDrainer(t *testing.T, h http.Handler) (*drainer, string) {
	t.Helper()
	return startDrainerWith(t, Config{}, h)
}

// startDrainerWith is startDrainer with cfg (its defaults applied here).
func startDrainerWith(t *testing.T, cfg Config, h http.Handler) (*drainer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDrainer(h, cfg.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	d.serve([]net.Listener{ln})
	return d, ln.Addr().String()
}

// keepAlive is a client connection that sends requests one at a time.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// get sends GET path and reads the whole response.
func (k *keepAlive) get(path string) (*http.Response, error) {
	if _, err := io.WriteString(k.c, "GET "+path+" HTTP/1.1\r\nHost: herd\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// closedByServer waits for the server to close the connection and reports
// whether it did.
func (k *keepAlive) closedByServer() bool {
	_, err := k.r.ReadByte()
	return errors.Is(err, io.EOF)
}

// A drain does not close a connection that has just been answered: a client
// may be sending its next request on it at that very moment. That request is
// answered, with "Connection: close", and the connection closed after it.
func TestDrainAnswersTheNextRequestOfAJustIdleConnection(t *testing.T) {
	t.Parallel()
	d, addr := startDrainer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	k := dialKeepAlive(t, addr)
	if resp, err := k.get("/"); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("first request: %v %v", resp, err)
	}
	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- d.drain(30 * time.Second) }()
	testutil.EventuallyTrue(t, 10*time.Second, "draining", d.draining.Load)
	resp, err := k.get("/")
	if time.Since(start) < idleClose {
		// Only meaningful while the connection is younger than idleClose
		// in its idle state; a machine slow enough to take longer proves
		// nothing either way.
		if err != nil {
			t.Fatalf("request on a connection idle for less than %s during the drain: %v", idleClose, err)
		}
		if resp.StatusCode != 200 || !resp.Close {
			t.Errorf("request during the drain: %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
		}
		if !k.closedByServer() {
			t.Error("the connection stayed open after its \"Connection: close\" response")
		}
	}
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
}

// A drain closes a connection that stays idle, but only once it has been
// idle for idleClose, and one that never sent a request likewise; then it
// returns, long before its timeout.
func TestDrainClosesQuietConnections(t *testing.T) {
	t.Parallel()
	d, addr := startDrainer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	idle := dialKeepAlive(t, addr)
	// The server notes the connection idle after its response, which comes after
	// this: a lower bound for the idle time that the client's reading cannot shift.
	sent := time.Now()
	if _, err := idle.get("/"); err != nil {
		t.Fatal(err)
	}
	quiet := dialKeepAlive(t, addr) // connected, never sends anything
	testutil.EventuallyTrue(t, 10*time.Second, "both connections tracked", func() bool {
		n := 0
		d.conns.Range(func(any, any) bool { n++; return true })
		return n == 2
	})
	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- d.drain(30 * time.Second) }()
	for name, k := range map[string]*keepAlive{"idle": idle, "quiet": quiet} {
		if !k.closedByServer() {
			t.Errorf("%s connection not closed by the drain", name)
		}
	}
	if d := time.Since(sent); d < idleClose {
		t.Errorf("idle connection closed %s after its request, want at least %s", d, idleClose)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("drain still waiting 20 s after its connections were closed")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("drain took %s", took)
	}
}

// A hijacked connection belongs to its handler: the drain neither waits for
// it nor closes it.
func TestDrainLeavesHijackedConnections(t *testing.T) {
	t.Parallel()
	hijacked := make(chan net.Conn, 1)
	d, addr := startDrainer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		hijacked <- c
	}))
	k := dialKeepAlive(t, addr)
	io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: herd\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	if resp, err := http.ReadResponse(k.r, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c := <-hijacked
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- d.drain(30 * time.Second) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("drain waited for a hijacked connection")
	}
	if _, err := io.WriteString(c, "still mine"); err != nil {
		t.Errorf("hijacked connection closed by the drain: %v", err)
	}
	buf := make([]byte, len("still mine"))
	if _, err := io.ReadFull(k.r, buf); err != nil || string(buf) != "still mine" {
		t.Errorf("client read %q, %v", buf, err)
	}
}
