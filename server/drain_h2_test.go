package server

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// idleFor reports whether every connection the drainer tracks has been idle
// (or new) for at least d.
func (d *drainer) idleFor(min time.Duration) bool {
	now, n, idle := d.now(), 0, 0
	d.conns.Range(func(_, v any) bool {
		n++
		if since := v.(*connState).idleSince.Load(); since != 0 && time.Duration(now-since) >= min {
			idle++
		}
		return true
	})
	return n > 0 && n == idle
}

// An HTTP/2 connection is busy while one of its streams is being served,
// even when it had been idle long enough to be closed before the stream
// began: a drain lets the stream finish, then closes the connection.
func TestDrainWaitsForHTTP2Streams(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	d, addr := startDrainerWith(t, Config{H2C: true}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, r.Proto+"\n")
	}))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	// A connection that never sends a request: its closing shows that the
	// drain has looked for idle connections.
	quiet := dialKeepAlive(t, addr)
	testutil.EventuallyTrue(t, 20*time.Second, "both connections idle for idleClose", func() bool { return d.idleFor(idleClose) })

	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{string(b), err}
	}()
	<-entered
	drained := make(chan error, 1)
	go func() { drained <- d.drain(30 * time.Second) }()
	if !quiet.closedByServer() {
		t.Fatal("the quiet connection was not closed by the drain")
	}
	close(release)
	if r := <-slow; r.err != nil || r.body != "HTTP/2.0\n" {
		t.Errorf("stream served during the drain: %q, %v; want HTTP/2.0 and no error", r.body, r.err)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("drain: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("drain still waiting after its last stream ended")
	}
}
