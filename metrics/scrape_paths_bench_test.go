package metrics_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/mmapstore"
)

// Accept headers of the scrapes benchmarked.
const (
	acceptText       = "text/plain;version=0.0.4"
	acceptPrometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptProto      = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)

// BenchmarkScrape serves the 16 x 5,000 files of BenchmarkScrapeVsPython through Handler,
// one sub-benchmark per way of serving and per request:
//
//   - fast: Handler(DirGatherer), as herd-exporter serves it;
//   - master: Handler(Gatherers{DirGatherer, the master's own families}), as the master does;
//   - dto: Handler over a GathererFunc that hides the DirGatherer, so every scrape goes
//     through dto families and expfmt: the general path, and what every scrape did before
//     the fast path;
//   - http: fast, over HTTP on loopback (client included: both share the 2 CPUs);
//   - cold: a new DirGatherer for every scrape (a master just started), fast and master.
//
// and text (0.0.4), prom (what Prometheus sends: OpenMetrics, gzip) and proto (delimited
// protobuf, gzip). cpu-ms/op is the process's CPU time per scrape (GC included), body-B
// the size of the response body.
func BenchmarkScrape(b *testing.B) {
	dir := b.TempDir()
	writeWorkers(b, dir, mmapstore.Legacy, laneIDs(benchWorkers, "a"), benchSeries)
	requests := []struct {
		name, accept string
		gzip         bool
	}{
		{"text", acceptText, false},
		{"prom", acceptPrometheus, true},
		{"proto", acceptProto, true},
	}
	own := masterFamilies()
	servers := []struct {
		name string
		new  func(g *metrics.DirGatherer) metrics.Gatherer
	}{
		{"fast", func(g *metrics.DirGatherer) metrics.Gatherer { return g }},
		{"master", func(g *metrics.DirGatherer) metrics.Gatherer { return metrics.Gatherers{g, own} }},
		{"dto", func(g *metrics.DirGatherer) metrics.Gatherer { return metrics.GathererFunc(g.Gather) }},
	}
	for _, s := range servers {
		for _, r := range requests {
			b.Run(s.name+"/"+r.name, func(b *testing.B) {
				g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
				defer g.Close()
				h := metrics.Handler(s.new(g), metrics.HandlerOpts{})
				req := newScrapeRequest(r.accept, r.gzip)
				w := &bufferWriter{h: http.Header{}}
				serve(b, h, w, req) // warm
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					serve(b, h, w, req)
				}
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(w.body.Len()), "body-B")
			})
		}
	}
	// Over HTTP on loopback, as Prometheus scrapes herd-exporter: the client keeps its
	// connection and reads the body as sent (gzipped when asked).
	for _, r := range requests[:2] {
		b.Run("http/"+r.name, func(b *testing.B) {
			g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
			defer g.Close()
			srv := httptest.NewServer(metrics.Handler(g, metrics.HandlerOpts{}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			defer client.CloseIdleConnections()
			get := func() int {
				req, err := http.NewRequest("GET", srv.URL, nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Accept", r.accept)
				if r.gzip {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("scrape: %d, %v", resp.StatusCode, err)
				}
				return int(n)
			}
			get()
			b.ReportAllocs()
			cpu, n := cpuTime(), 0
			for b.Loop() {
				n = get()
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(n), "body-B")
		})
	}
	// Cold: a new DirGatherer (and Reader) for every scrape, as a master just started, or
	// herd-exporter just pointed at the directory: every file is mapped, every key parsed
	// and resolved. cold-ms and cold-cpu-ms are the medians of that first scrape alone
	// (wall and process CPU, GC included), cold-cpu-min-ms the least (the figure a loaded
	// machine disturbs least), second-ms the median of the scrape after it
	// (where what the first one left to do shows). The gatherer is closed and the heap
	// collected outside the timed scrapes, as a new process has neither to do.
	for _, s := range servers[:2] {
		for _, r := range requests[:2] {
			b.Run("cold/"+s.name+"/"+r.name, func(b *testing.B) {
				req := newScrapeRequest(r.accept, r.gzip)
				w := &bufferWriter{h: http.Header{}}
				var wall, cpu, second []float64
				for b.Loop() {
					g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
					h := metrics.Handler(s.new(g), metrics.HandlerOpts{})
					c, t := cpuTime(), time.Now()
					serve(b, h, w, req)
					wall = append(wall, float64(time.Since(t).Nanoseconds()))
					cpu = append(cpu, float64(cpuTime()-c))
					t = time.Now()
					serve(b, h, w, req)
					second = append(second, float64(time.Since(t).Nanoseconds()))
					g.Close()
					runtime.GC()
				}
				b.ReportMetric(median(wall)/1e6, "cold-ms")
				b.ReportMetric(median(cpu)/1e6, "cold-cpu-ms")
				b.ReportMetric(slices.Min(cpu)/1e6, "cold-cpu-min-ms")
				b.ReportMetric(median(second)/1e6, "second-ms")
			})
		}
	}
}

// BenchmarkScrapeHistograms is BenchmarkScrape's fast text scrape of 16 workers with 500
// latency histograms each (the default 11 bounds: 8,000 entries a file), as the master's
// http_request_duration_seconds makes them: buckets are the bulk of a real scrape.
func BenchmarkScrapeHistograms(b *testing.B) {
	dir := b.TempDir()
	for _, id := range laneIDs(benchWorkers, "a") {
		reg := metricstest.NewRegistryWith(b, metrics.Options{Dir: dir, ID: id})
		h := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "http_request_duration_seconds", Help: "Latency."}, "method", "route")
		for i := range 500 {
			s := h.With(benchMethods[i%4], fmt.Sprintf("/api/v1/items/%d/{id}", i/4))
			for k := range 5 {
				s.Observe(float64(k*i%97) / 100)
			}
		}
	}
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer g.Close()
	h := metrics.Handler(g, metrics.HandlerOpts{})
	req := newScrapeRequest(acceptText, false)
	w := &bufferWriter{h: http.Header{}}
	serve(b, h, w, req)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		serve(b, h, w, req)
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(w.body.Len()), "body-B")
}

// BenchmarkScrapeGzip compresses the OpenMetrics body of the 16 x 5,000 files at several
// gzip levels: the time each takes against the size it gives (gz-B), for Handler's choice of
// gzip.BestSpeed.
func BenchmarkScrapeGzip(b *testing.B) {
	dir := b.TempDir()
	writeWorkers(b, dir, mmapstore.Legacy, laneIDs(benchWorkers, "a"), benchSeries)
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer g.Close()
	w := &bufferWriter{h: http.Header{}}
	serve(b, metrics.Handler(g, metrics.HandlerOpts{}), w, newScrapeRequest(acceptPrometheus, false))
	body := bytes.Clone(w.body.Bytes())
	for _, level := range []struct {
		name  string
		level int
	}{{"huffman-only", gzip.HuffmanOnly}, {"best-speed", gzip.BestSpeed}, {"2", 2}, {"default", gzip.DefaultCompression}} {
		b.Run(level.name, func(b *testing.B) {
			var out bytes.Buffer
			zw, err := gzip.NewWriterLevel(&out, level.level)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			cpu := cpuTime()
			for b.Loop() {
				out.Reset()
				zw.Reset(&out)
				zw.Write(body)
				zw.Close()
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(out.Len()), "gz-B")
		})
	}
}

func newScrapeRequest(accept string, gzip bool) *http.Request {
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	return req
}

func serve(tb testing.TB, h http.Handler, w *bufferWriter, req *http.Request) {
	w.body.Reset()
	clear(w.h)
	w.code = http.StatusOK
	h.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		tb.Fatalf("scrape: status %d: %s", w.code, w.body.Bytes())
	}
}

// masterFamilies is a Gatherer of families like the master's own: its process gauges
// (labelled pid="master") and the supervision families.
func masterFamilies() metrics.Gatherer {
	gauge := func(name, help string, v float64, labels ...string) *dto.MetricFamily {
		mf := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
		m := &dto.Metric{Gauge: &dto.Gauge{Value: &v}}
		for i := 0; i < len(labels); i += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: &labels[i], Value: &labels[i+1]})
		}
		mf.Metric = []*dto.Metric{m}
		return mf
	}
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{
			gauge("herd_process_goroutines", "Goroutines of the process.", 9, "pid", "master"),
			gauge("herd_process_open_fds", "Open file descriptors of the process.", 31, "pid", "master"),
			gauge("herd_metrics_dir_free_bytes", "Space left.", 1e9),
			gauge("herd_workers", "Worker processes of this master, by state.", 16, "state", "ready"),
		}, nil
	})
}
