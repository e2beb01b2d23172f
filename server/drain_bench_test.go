package server

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// BenchmarkDrainerWrap is the drainer's own cost per request: the counting,
// the draining and recycling checks, the h2c upgrade check.
func BenchmarkDrainerWrap(b *testing.B) {
	d := newDrainer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{}.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	h := d.srv.Handler
	w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/hello", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkDrainerRequest is what the drainer adds to every request on a
// keep-alive connection: net/http reports the connection active, the
// drainer's handler wrapper runs, net/http reports the connection idle
// again. The handler does nothing.
func BenchmarkDrainerRequest(b *testing.B) {
	d := newDrainer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{}.withDefaults(), 0, nil, log.New(io.Discard, "", 0))
	conns := make([]net.Conn, 64)
	for i := range conns {
		conns[i] = new(net.TCPConn)
		d.track(conns[i], http.StateNew)
	}
	h := d.srv.Handler
	r := httptest.NewRequest("GET", "/", nil)
	b.Run("serial", func(b *testing.B) {
		w := httptest.NewRecorder()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c := conns[i%len(conns)]
			d.track(c, http.StateActive)
			h.ServeHTTP(w, r)
			d.track(c, http.StateIdle)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			c := conns[next.Add(1)%int64(len(conns))]
			w := httptest.NewRecorder()
			for pb.Next() {
				d.track(c, http.StateActive)
				h.ServeHTTP(w, r)
				d.track(c, http.StateIdle)
			}
		})
	})
}
