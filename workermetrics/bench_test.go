package workermetrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/herdhttp/herd/internal/expo"
	"github.com/herdhttp/herd/metrics"
)

// benchRegistry is a client_golang registry of 1,000 series: 600 counters,
// 300 gauges and 100 histograms (client_golang's default 11 buckets),
// each with two labels.
func benchRegistry() *prometheus.Registry {
	reg, _ := benchSeries()
	return reg
}

// benchSeries is benchRegistry and a function that changes the value of
// every series.
func benchSeries() (*prometheus.Registry, func()) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_requests_total", Help: "Requests."}, []string{"route", "code"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "app_pool_connections", Help: "Connections."}, []string{"pool", "state"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "app_query_seconds", Help: "Query time."}, []string{"table", "op"})
	reg.MustRegister(c, g, h)
	var counters []prometheus.Counter
	var gauges []prometheus.Gauge
	var hists []prometheus.Observer
	for i := range 600 {
		counters = append(counters, c.WithLabelValues(fmt.Sprintf("/route/%d", i/6), fmt.Sprint(200+i%6)))
		counters[i].Add(float64(i))
	}
	for i := range 300 {
		gauges = append(gauges, g.WithLabelValues(fmt.Sprintf("pool%d", i/3), fmt.Sprint("state", i%3)))
		gauges[i].Set(float64(i))
	}
	for i := range 100 {
		hists = append(hists, h.WithLabelValues(fmt.Sprintf("table%d", i/4), fmt.Sprint("op", i%4)))
		hists[i].Observe(float64(i) / 100)
	}
	return reg, func() {
		for _, x := range counters {
			x.Inc()
		}
		for _, x := range gauges {
			x.Inc()
		}
		for i, x := range hists {
			x.Observe(float64(i) / 100)
		}
	}
}

// cpuTime is the CPU time this process has used: on a shared machine it
// varies less than the elapsed time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs f b.N times and reports this process's CPU time per run, in
// milliseconds.
func loop(b *testing.B, f func()) {
	b.Helper()
	start := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(ms(cpuTime()-start)/float64(b.N), "cpu-ms/op")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// herdRunDir is what herd's own gatherer reads in the master's scrape: the
// metric files of 4 workers with the middleware's families for 20 routes.
func herdRunDir(b *testing.B) string {
	dir := b.TempDir()
	for i := range 4 {
		reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: fmt.Sprintf("%da", i)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { reg.Close() })
		c := reg.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests."}, "method", "route", "code")
		h := reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "http_request_duration_seconds", Help: "Latency."}, "method", "route")
		for r := range 20 {
			c.With("GET", fmt.Sprintf("/r%d", r), "200").Add(float64(r))
			h.With("GET", fmt.Sprintf("/r%d", r)).Observe(0.01)
		}
	}
	return dir
}

// BenchmarkMasterScrape is the master's GET /metrics (text format) with 4
// worker processes (this test binary re-executed) exporting 1,000
// client_golang series each, against the same scrape of herd's own
// families without them: the difference is what the bridge adds.
// "with-4x1000" workers' series do not change between scrapes (a family
// the master decoded before costs a comparison);
// "with-4x1000-changing" workers change every series before each snapshot,
// so every family is decoded at every scrape.
// cpu-ms/op is the master's CPU time; the workers gather on the other
// CPUs, as they do under herd. "with-4x1000" alternates the two scrapes,
// so that both see the same load: bridge-cpu-ms/op is the difference
// between them, and herd-cpu-ms/op the scrape without export.
func BenchmarkMasterScrape(b *testing.B) {
	run := herdRunDir(b)
	dir, changingDir := filepath.Join(run, "export"), filepath.Join(b.TempDir(), "export")
	for i := range 4 {
		c := startChild(b, dir, fmt.Sprintf("%da\tbench", i))
		b.Cleanup(func() { c.in.Close(); c.wait() })
		c = startChild(b, changingDir, fmt.Sprintf("%da\tbench-changing", i))
		b.Cleanup(func() { c.in.Close(); c.wait() })
	}
	herd := metrics.NewDirGatherer(run, metrics.GathererOpts{})
	scrape := func(g metrics.Gatherer) func() {
		h := metrics.Handler(g, metrics.HandlerOpts{DisableCompression: true})
		req := httptest.NewRequest("GET", "/metrics", nil)
		return func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		}
	}
	g := NewGatherer(dir, herd, GathererOpts{})
	fams, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range fams {
		if mf.GetName() == "app_pool_connections" && len(mf.Metric) != 4*300 {
			b.Fatalf("%d gauge series, want 4 x 300", len(mf.Metric))
		}
	}
	b.Run("herd-only", func(b *testing.B) { loop(b, scrape(herd)) })
	b.Run("with-4x1000", func(b *testing.B) { against(b, scrape(herd), scrape(g), "herd-cpu-ms/op", "bridge-cpu-ms/op") })
	changing := NewGatherer(changingDir, herd, GathererOpts{})
	b.Run("with-4x1000-changing", func(b *testing.B) { against(b, scrape(herd), scrape(changing), "herd-cpu-ms/op", "bridge-cpu-ms/op") })
}

// against runs without and with alternately and reports with's CPU time
// (cpu-ms/op), without's (the metric named base) and the difference (named
// extra), in milliseconds per run.
func against(b *testing.B, without, with func(), base, extra string) {
	var withoutCPU, withCPU time.Duration
	for b.Loop() {
		t0 := cpuTime()
		without()
		t1 := cpuTime()
		with()
		withoutCPU += t1 - t0
		withCPU += cpuTime() - t1
	}
	b.ReportMetric(ms(withCPU)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(ms(withoutCPU)/float64(b.N), base)
	b.ReportMetric(ms(withCPU-withoutCPU)/float64(b.N), extra)
}

// BenchmarkWorkerSnapshot is a worker's snapshot of 1,000 client_golang
// series: gather, encode, write and rename the file ("file", every
// second), and gather, encode and write as answered to the master
// ("answer"). Each alternates with a gather alone ("gather-only" on its
// own), so that both see the same load: gather-cpu-ms/op is client_golang's
// Registry.Gather, over-gather-cpu-ms/op what the snapshot adds to it.
// "promhttp" is one scrape of the same registry through client_golang's own
// handler, what the worker would spend if Prometheus scraped it directly.
func BenchmarkWorkerSnapshot(b *testing.B) {
	reg := benchRegistry()
	p, err := NewPublisher(filepath.Join(b.TempDir(), "export"), "0a", reg, PublisherOpts{Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	overGather := func(b *testing.B, f func()) {
		against(b, func() { reg.Gather() }, f, "gather-cpu-ms/op", "over-gather-cpu-ms/op")
	}
	b.Run("file", func(b *testing.B) {
		overGather(b, func() {
			if err := p.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("answer", func(b *testing.B) {
		overGather(b, func() {
			if err := p.writeSnapshot(io.Discard); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("gather-only", func(b *testing.B) {
		loop(b, func() { reg.Gather() })
	})
	// For comparison: what one Prometheus scrape of the same registry costs a
	// process that serves it with client_golang's own handler (text format).
	b.Run("promhttp", func(b *testing.B) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		loop(b, func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("promhttp: %d", w.Code)
			}
		})
	})
}

// BenchmarkMasterScrapeParts splits the master's side of that scrape, in
// one process: decoding one worker's snapshot of 1,000 series ("decode",
// steady state: the decoder has seen the snapshot before;
// "decode-changed": every value changed), merging 4 of them ("merge"),
// rendering the merged families as text ("render": 600 summed counters,
// 100 summed histograms, 4 x 300 gauges) and, for comparison, encoding
// them as Gather returns them with herd's handler ("text": dto families and
// expfmt, as protobuf scrapes and the path before rendering).
func BenchmarkMasterScrapeParts(b *testing.B) {
	fams, err := benchRegistry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(appendSnapshot(nil, 1, fams))
	data := buf.Bytes()
	m := &merger{perWorker: DefaultPerWorker}
	m.reserve(nil)
	var srcs []source
	for i := range 4 {
		id := fmt.Sprintf("%da", i)
		_, f, err := readSnapshot(bytes.NewReader(data), newDecoder(id, m.perWorkerFamily))
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, source{worker: id, fams: f, perWorker: true})
	}
	b.Run("decode", func(b *testing.B) {
		d := newDecoder("0a", m.perWorkerFamily)
		loop(b, func() { readSnapshot(bytes.NewReader(data), d) })
	})
	// Every value changed since the worker's last snapshot: every family
	// is decoded anew.
	changed := appendSnapshot(nil, 2, bumped(fams))
	b.Run("decode-changed", func(b *testing.B) {
		d := newDecoder("0a", m.perWorkerFamily)
		i := 0
		loop(b, func() {
			i++
			if i%2 == 0 {
				readSnapshot(bytes.NewReader(data), d)
			} else {
				readSnapshot(bytes.NewReader(changed), d)
			}
		})
	})
	b.Run("merge", func(b *testing.B) { loop(b, func() { m.mergeServed(srcs, nil) }) })
	served, _ := m.mergeServed(srcs, nil)
	var les expo.Bounds
	var buf2 []byte
	b.Run("render", func(b *testing.B) {
		loop(b, func() {
			r := newRenderer(buf2[:0], expfmt.NewFormat(expfmt.TypeTextPlain))
			r.les = &les
			for i := range served {
				if !r.family(&served[i]) {
					r.encode(served[i].dto())
				}
			}
			buf2 = r.b
		})
	})
	out, _ := m.merge(srcs, nil)
	h := metrics.Handler(metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return out, nil }),
		metrics.HandlerOpts{DisableCompression: true})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.Run("text", func(b *testing.B) { loop(b, func() { h.ServeHTTP(httptest.NewRecorder(), req) }) })
}

// bumped returns a copy of fams with every counter, gauge and histogram
// sum increased by one.
func bumped(fams []*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, len(fams))
	for i, mf := range fams {
		mf = proto.Clone(mf).(*dto.MetricFamily)
		for _, m := range mf.Metric {
			switch {
			case m.Counter != nil:
				m.Counter.Value = proto.Float64(m.Counter.GetValue() + 1)
			case m.Gauge != nil:
				m.Gauge.Value = proto.Float64(m.Gauge.GetValue() + 1)
			case m.Histogram != nil:
				m.Histogram.SampleSum = proto.Float64(m.Histogram.GetSampleSum() + 1)
			}
		}
		out[i] = mf
	}
	return out
}
