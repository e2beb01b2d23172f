package server

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"
)

// serveDrainer serves h through a drainer with cfg on 127.0.0.1:0.
func serveDrainer(t *testing.T, cfg Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDrainer(h, cfg.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	d.serve([]net.Listener{ln})
	t.Cleanup(func() { d.drain(time.Second) })
	return ln.Addr().String()
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
