package server

import (
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// A serving process knows how many requests its handlers are running (a
// worker reports it with its heartbeat): a request counts from its
// handler's start to its end, a panicking handler included.
func TestDrainerCountsRequestsInFlight(t *testing.T) {
	t.Parallel()
	const held = 3
	entered, release := make(chan struct{}, held), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDrainer(mux, Config{}.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	d.serve([]net.Listener{ln})
	defer d.drain(5 * time.Second)
	sv := &serving{d: d}
	base := "http://" + ln.Addr().String()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

	if n := sv.inFlight(); n != 0 {
		t.Fatalf("%d in flight before any request", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, held)
	for range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(base + "/hold")
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	for range held {
		select {
		case <-entered:
		case <-time.After(20 * time.Second):
			t.Fatal("the held requests did not reach the handler")
		}
	}
	if n := sv.inFlight(); n != held {
		t.Errorf("%d in flight while %d handlers run, want %d", n, held, held)
	}
	if resp, err := c.Get(base + "/panic"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /panic: %s, want the connection aborted", resp.Status)
	}
	if n := sv.inFlight(); n != held {
		t.Errorf("%d in flight after a handler panicked, want %d", n, held)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a held request: %v", err)
		}
	}
	testutil.EventuallyTrue(t, 10*time.Second, "no request in flight", func() bool { return sv.inFlight() == 0 })
}

type discardResponse struct{ h http.Header }

func (d discardResponse) Header() http.Header         { return d.h }
func (d discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (d discardResponse) WriteHeader(int)             {}

// The drainer's own cost per request (its counters), around a handler that
// does nothing: go test -run X -bench DrainerHandler -cpu 1,2 ./server/
func BenchmarkDrainerHandler(b *testing.B) {
	d := newDrainer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{}.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	h := d.srv.Handler
	req, _ := http.NewRequest("GET", "/", nil)
	b.RunParallel(func(pb *testing.PB) {
		w := discardResponse{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}
