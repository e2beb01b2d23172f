package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// openFDs counts the open descriptors of pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// closedWithin reads from each connection until the server closes it (any
// response it sends first, such as 408, is read and discarded) and returns
// how long the last one took, or fails if one is still open after d.
func closedWithin(t *testing.T, conns []net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(start.Add(d))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Errorf("%d of %d connections still open after %s", open, len(conns), d)
	}
	return time.Since(start)
}

// timedRequests sends n GET /hello over a keep-alive client, failing on
// any error, and returns the latencies, sorted.
func timedRequests(t *testing.T, base string, n int) []time.Duration {
	t.Helper()
	c := keepAliveClient()
	defer c.CloseIdleConnections()
	var lat []time.Duration
	for range n {
		start := time.Now()
		resp, err := c.Get(base + "/hello")
		if err != nil {
			t.Fatalf("a normal client failed while slow clients were connected: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("a normal client got %s", resp.Status)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat
}

func TestSlowClientsCannotExhaustAWorker(t *testing.T) {
	const slow = 1000
	// One worker: all the slow connections land on it.
	p := startHello(t, "-workers", "1", "-read-header-timeout", "1s", "-idle-timeout", "1s")
	ws := p.waitReady(1)
	addr := strings.TrimPrefix(p.app, "http://")
	baseFDs := openFDs(t, ws[0].PID)

	t.Run("slow headers", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range slow {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
			// A request whose headers never end (slowloris).
			fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: herd\r\nX-Slow-%d: ", i)
		}
		opened := time.Now()
		// Trickle a byte on every connection while normal clients are
		// served: a deadline on the whole header, not on each read.
		stop := make(chan struct{})
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				for _, c := range conns {
					c.Write([]byte("a"))
				}
			}
		}()
		lat := timedRequests(t, p.app, 300)
		close(stop)
		<-trickled
		p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
		if p99 > 500*time.Millisecond {
			t.Errorf("normal requests with %d slow clients connected: p50 %s, p99 %s, want p99 under 500ms", slow, p50, p99)
		}
		closedWithin(t, conns, 5*time.Second)
		t.Logf("%d slowloris connections on one worker: 300 normal requests, p50 %s p99 %s max %s; all slow connections closed %s after opening (-read-header-timeout 1s)",
			slow, p50.Round(time.Microsecond), p99.Round(time.Microsecond), worst.Round(time.Millisecond), time.Since(opened).Round(time.Millisecond))
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range slow / 2 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /users/idle HTTP/1.1\r\nHost: herd\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		closedWithin(t, conns, 5*time.Second)
	})

	// Everything the slow clients held is released.
	if err := testutil.WaitUntil(5*time.Second, func() error {
		if n := openFDs(t, ws[0].PID); n > baseFDs+5 {
			return fmt.Errorf("worker has %d open descriptors, %d before the slow clients", n, baseFDs)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// rawStatus sends one GET /hello with an extra header of size bytes and
// returns the status code.
func rawStatus(t *testing.T, addr string, size int) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: herd\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", size))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("header of %d bytes: %v", size, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestOversizedHeadersGet431(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args       []string
		fits, over int
	}{
		{nil, 32 << 10, 100 << 10}, // the default limit: 64 KiB
		{[]string{"-max-header-bytes", "4096"}, 2 << 10, 16 << 10},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			p := startHello(t, append([]string{"-workers", "1"}, tc.args...)...)
			p.waitReady(1)
			addr := strings.TrimPrefix(p.app, "http://")
			if code := rawStatus(t, addr, tc.fits); code != 200 {
				t.Errorf("header of %d bytes: %d, want 200", tc.fits, code)
			}
			if code := rawStatus(t, addr, tc.over); code != 431 {
				t.Errorf("header of %d bytes: %d, want 431", tc.over, code)
			}
			// The oversized request was not counted as served.
			if v := p.helloCount(); v != 1 {
				t.Errorf("http_requests_total{route=\"/hello\"} = %v, want 1", v)
			}
		})
	}
}
