package scale

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/mmapstore"
)

// An app is what each worker writes into its files.
type app struct {
	name string
	// series is the number of extra counter series per worker, beside what
	// examples/hello's routes and the resource gauges write.
	series  int
	workers []int
}

var apps = []app{
	// examples/hello after some traffic: herd's middleware on three routes
	// (200s and a 404), the in-flight gauge, and the three resource gauges
	// each worker keeps: 4 files per worker, a few dozen entries.
	{name: "hello", series: 0, workers: []int{4, 16, 64, 256}},
	// The same with 5,000 more counter series per worker, as many as the
	// scrape benchmarks of the metrics package use.
	{name: "5k", series: 5000, workers: []int{4, 16, 64}},
}

// BenchmarkScrape is the master's steady scrape of a directory of W
// workers' files through metrics.Handler, as GET /metrics serves it in the
// text format. Besides ns/op it reports the process's CPU time per scrape
// (cpu-ms/op), the files, the entries in them, the body's size and lines.
func BenchmarkScrape(b *testing.B) {
	for _, a := range apps {
		for _, w := range a.workers {
			b.Run(fmt.Sprintf("app=%s/workers=%d", a.name, w), func(b *testing.B) {
				dir := shmDir(b)
				for i := range w {
					writeWorker(b, dir, fmt.Sprintf("%da", i), a.series)
				}
				files, entries := count(b, dir)
				g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
				b.Cleanup(func() { g.Close() })
				h := metrics.Handler(g, metrics.HandlerOpts{})
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", "text/plain;version=0.0.4")
				rec := &bodyWriter{h: http.Header{}}
				cold := time.Now()
				scrape(b, h, req, rec)
				coldMS := float64(time.Since(cold).Microseconds()) / 1e3
				size, lines := rec.body.Len(), bytes.Count(rec.body.Bytes(), []byte("\n"))
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					scrape(b, h, req, rec)
				}
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(coldMS, "first-ms")
				b.ReportMetric(float64(files), "files")
				b.ReportMetric(float64(entries), "entries")
				b.ReportMetric(float64(size), "body-bytes")
				b.ReportMetric(float64(lines), "lines")
			})
		}
	}
}

// writeWorker writes one worker's files as examples/hello's worker does
// after serving its routes, plus series more counter series.
func writeWorker(tb testing.TB, dir, id string, series int) {
	tb.Helper()
	reg := metricstest.NewRegistryWith(tb, metrics.Options{Dir: dir, ID: id})
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	r.Get("/users/{id}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "user\n") })
	for _, path := range []string{"/hello", "/users/1", "/nope"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	// The resource gauges herd's server package keeps for every process.
	for _, name := range []string{"herd_process_goroutines", "herd_process_open_fds", "herd_process_resident_memory_bytes"} {
		reg.MustNewGauge(metrics.GaugeOpts{Name: name, Help: "Resource gauge.", Mode: metrics.GaugeLiveAll}).Set(8)
	}
	if series > 0 {
		v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "app_items_total", Help: "Items."}, "method", "route", "code")
		methods := []string{"GET", "POST", "PUT", "DELETE"}
		for i := range series {
			v.With(methods[i%4], fmt.Sprintf("/api/v1/items/%d/{id}", i/4), "200").Add(float64(i))
		}
	}
}

// count returns the files and the entries in them.
func count(tb testing.TB, dir string) (files, entries int) {
	tb.Helper()
	r := mmapstore.NewReader()
	defer r.Close()
	fs, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) > 0 {
		tb.Fatalf("scan %s: %v, skipped %v", dir, err, skipped)
	}
	for _, f := range fs {
		entries += len(f.Samples)
	}
	return len(fs), entries
}

func scrape(tb testing.TB, h http.Handler, req *http.Request, w *bodyWriter) {
	w.body.Reset()
	clear(w.h)
	w.code = http.StatusOK
	h.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		tb.Fatalf("scrape: %d %s", w.code, w.body.Bytes())
	}
}

// bodyWriter is an http.ResponseWriter keeping the body in a reused buffer.
type bodyWriter struct {
	h    http.Header
	body bytes.Buffer
	code int
}

func (w *bodyWriter) Header() http.Header         { return w.h }
func (w *bodyWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *bodyWriter) WriteHeader(code int)        { w.code = code }

// shmDir is a fresh directory on tmpfs (/dev/shm, herd's default for
// metric files) when there is one, removed at the end.
func shmDir(tb testing.TB) string {
	tb.Helper()
	root := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		root = "/dev/shm"
	}
	dir, err := os.MkdirTemp(root, "herd-scale-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cpuTime is the process's CPU time (every thread, GC included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
