package workermetrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/herdhttp/herd/internal/expo"
	"github.com/herdhttp/herd/metrics"
)

// randomFamilies makes the families one worker might gather: counters
// (with and without _total), gauges, untyped, summaries, classic
// histograms (some with a +Inf bound, some with float counts), per-worker
// families, names and label names outside the legacy character set,
// helps and label values that need escaping, units, timestamps, and
// values of every kind. Series are drawn from small pools, so that
// workers share some.
func randomFamilies(r *rand.Rand) []*dto.MetricFamily {
	names := []string{"app_c_total", "app_c2", "app_g", "go_g", "go_c_total", "process_h", "app_h", "app_s", "app_u", "app.dotted", "app_bytes_total", "app_h_seconds"}
	values := []float64{0, math.Copysign(0, -1), 1, -1, 3, 123456, 999999, 1e6, 2.5, 1e-7, 1e21, math.NaN(), math.Inf(1), math.Inf(-1), -42.125, float64(1 << 53)}
	helps := []string{"Plain.", `Back\slash "quoted"` + "\nnewline", "", "ü"}
	labelNames := []string{"a", "b", "route", "odd.label", "code"}
	labelValues := []string{"x", "", `q"uote`, "back\\slash", "new\nline", "ü"}
	bounds := []float64{0.005, 0.1, 1, 2.5, 10, 1e6, math.Inf(1)}
	var out []*dto.MetricFamily
	for _, name := range names {
		if r.IntN(5) == 0 {
			continue
		}
		mf := &dto.MetricFamily{Name: proto.String(name)}
		if r.IntN(8) > 0 {
			mf.Help = proto.String(helps[r.IntN(len(helps))])
		}
		var t dto.MetricType
		switch name {
		case "app_c_total", "app_c2", "go_c_total", "app_bytes_total", "app.dotted":
			t = dto.MetricType_COUNTER
		case "app_g", "go_g":
			t = dto.MetricType_GAUGE
		case "app_h", "process_h", "app_h_seconds":
			t = dto.MetricType_HISTOGRAM
		case "app_s":
			t = dto.MetricType_SUMMARY
		default:
			t = dto.MetricType_UNTYPED
		}
		mf.Type = t.Enum()
		if name == "app_bytes_total" || name == "app_h_seconds" {
			mf.Unit = proto.String([]string{"bytes", "seconds"}[r.IntN(2)])
		}
		seen := map[string]bool{}
		for range r.IntN(6) + 1 {
			m := &dto.Metric{}
			key := ""
			for _, ln := range labelNames {
				if r.IntN(3) == 0 && (ln != "odd.label" || r.IntN(4) == 0) {
					v := labelValues[r.IntN(len(labelValues))]
					m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(ln), Value: proto.String(v)})
					key += ln + "=" + v + ","
				}
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			v := values[r.IntN(len(values))]
			switch t {
			case dto.MetricType_COUNTER:
				m.Counter = &dto.Counter{Value: proto.Float64(math.Abs(v))}
			case dto.MetricType_GAUGE:
				m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
				if r.IntN(10) == 0 {
					m.TimestampMs = proto.Int64(1700000000123)
				}
			case dto.MetricType_UNTYPED:
				m.Untyped = &dto.Untyped{Value: proto.Float64(v)}
			case dto.MetricType_SUMMARY:
				m.Summary = &dto.Summary{SampleCount: proto.Uint64(uint64(r.IntN(100))), SampleSum: proto.Float64(v),
					Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(v)}}}
			case dto.MetricType_HISTOGRAM:
				h := &dto.Histogram{SampleSum: proto.Float64(v)}
				c := uint64(0)
				for _, b := range bounds {
					if r.IntN(3) == 0 && (!math.IsInf(b, 1) || r.IntN(3) == 0) {
						continue
					}
					c += uint64(r.IntN(1000))
					h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(c)})
				}
				h.SampleCount = proto.Uint64(c + uint64(r.IntN(3)))
				if r.IntN(20) == 0 {
					h.SampleCountFloat = proto.Float64(float64(c) + 0.5)
				}
				m.Histogram = h
			}
			m.Label = sortedLabels(m.Label)
			mf.Metric = append(mf.Metric, m)
		}
		out = append(out, mf)
	}
	return out
}

func sortedLabels(lps []*dto.LabelPair) []*dto.LabelPair {
	for i := 1; i < len(lps); i++ {
		for j := i; j > 0 && lps[j].GetName() < lps[j-1].GetName(); j-- {
			lps[j], lps[j-1] = lps[j-1], lps[j]
		}
	}
	return lps
}

// TestRenderMatchesExpfmt merges random families of three workers and the
// dead workers' totals, and checks that every merged family renders, in
// the text format and in OpenMetrics, to the bytes expfmt encodes its dto
// family to (Gather's path), or to nothing where expfmt fails.
func TestRenderMatchesExpfmt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	direct := 0
	var les expo.Bounds // kept across rounds and formats, as a Gatherer keeps it
	for round := range 300 {
		m := &merger{perWorker: DefaultPerWorker}
		m.reserve(nil)
		var srcs []source
		for w := range 3 {
			srcs = append(srcs, live(t, m, fmt.Sprintf("%da", w), randomFamilies(r)...))
		}
		dead := decoded(t, m, "dead", randomFamilies(r))
		var totals []family
		totals = m.fold(totals, dead)
		fams, _ := m.mergeServed(srcs, totals)
		for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics)} {
			for i := range fams {
				var want []byte
				enc := expfmt.NewEncoder(expo.Appender{B: &want}, format)
				if err := enc.Encode(fams[i].dto()); err != nil {
					want = nil
				}
				rd := newRenderer(nil, format)
				rd.les = &les
				if rd.family(&fams[i]) {
					direct++
				} else {
					rd.encode(fams[i].dto())
				}
				if string(rd.b) != string(want) {
					t.Fatalf("round %d, %s, family %s: rendered\n%s\nexpfmt\n%s", round, format, fams[i].sum.mf.GetName(), rd.b, want)
				}
			}
		}
	}
	if direct < 1000 {
		t.Errorf("only %d families rendered directly: the test does not exercise the renderer", direct)
	}
}

// TestHandlerRendersAsGather serves one Gatherer (3 in-process workers
// publishing random families, a dead worker's snapshot folded, herd's
// metric files and a family clashing with one of herd's) through
// metrics.Handler, which renders it (metrics.Renderer), and through a
// handler of its Gather, in the text format and OpenMetrics: the bodies are
// the same but for the scrape durations.
func TestHandlerRendersAsGather(t *testing.T) {
	run := t.TempDir()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: run, ID: "0a"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests."}, "code").With("200").Add(3)
	dirG := metrics.NewDirGatherer(run, metrics.GathererOpts{})
	extra := gathered(parse(t, "# TYPE extra_total counter\nextra_total 2\n"))
	for name, herd := range map[string]metrics.Gatherer{
		"DirGatherer":           dirG,                              // rendered from the files
		"Gatherers":             metrics.Gatherers{dirG, extra},    // the same, joined with another
		"without a DirGatherer": metrics.GathererFunc(dirG.Gather), // gathered and encoded
		"nil":                   nil,
	} {
		t.Run(name, func(t *testing.T) { checkRendersAsGather(t, run, herd) })
	}
}

func checkRendersAsGather(t *testing.T, run string, herd metrics.Gatherer) {
	r := rand.New(rand.NewPCG(3, 4))
	dir := filepath.Join(t.TempDir(), "export")
	clash := &dto.MetricFamily{Name: proto.String("http_requests"), Help: proto.String("Clash."), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}}}}
	var current [4][]*dto.MetricFamily
	var mu sync.Mutex
	for w := range 4 {
		w := w
		g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
			mu.Lock()
			defer mu.Unlock()
			return current[w], nil
		})
		current[w] = append(randomFamilies(r), clash)
		p, err := NewPublisher(dir, fmt.Sprintf("%da", w), g, PublisherOpts{Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if w == 3 {
			p.Close() // dead: folded into the totals at the first scrape
			continue
		}
		defer p.Close()
	}
	g := NewGatherer(dir, herd, GathererOpts{Timeout: 10 * time.Second})
	rendered := metrics.Handler(g, metrics.HandlerOpts{DisableCompression: true})
	gathered := metrics.Handler(metrics.GathererFunc(g.Gather), metrics.HandlerOpts{DisableCompression: true})
	// The scrape durations (herd's and the export's) differ from scrape to scrape.
	duration := regexp.MustCompile(`(?m)^(herd_\w+_scrape_duration_seconds) .*$`)
	get := func(h http.Handler, accept string) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		return duration.ReplaceAllString(rec.Body.String(), "$1 X")
	}
	for round := range 20 {
		for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"} {
			got, want := get(rendered, accept), get(gathered, accept)
			if got != want {
				t.Fatalf("round %d, %s: rendered\n%s\nwant (Gather)\n%s", round, accept, got, want)
			}
			if herd != nil && !strings.Contains(got, `http_requests_total{code="200"} 3`) || herd != nil && !strings.Contains(got, droppedName+`{reason="herd_name"} 1`) {
				t.Fatalf("round %d: herd's family missing, or the clash not counted:\n%s", round, got)
			}
		}
		mu.Lock()
		for w := range 3 {
			if r.IntN(2) == 0 {
				current[w] = append(randomFamilies(r), clash)
			}
		}
		mu.Unlock()
	}
}

// TestConcurrentRenderedAndGatheredScrapes scrapes one Gatherer around
// herd's DirGatherer in the text format (rendered: herd's files, then the
// workers) and in protobuf (Gather: the workers, with herd's gatherer) at
// the same time: neither waits for the other for ever.
func TestConcurrentRenderedAndGatheredScrapes(t *testing.T) {
	run := t.TempDir()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: run, ID: "0a"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Inc()
	dir := filepath.Join(run, "export")
	r := rand.New(rand.NewPCG(5, 6))
	fams := randomFamilies(r)
	p, err := NewPublisher(dir, "0a", metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil }), PublisherOpts{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := metrics.Handler(NewGatherer(dir, metrics.NewDirGatherer(run, metrics.GathererOpts{}), GathererOpts{}), metrics.HandlerOpts{DisableCompression: true})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, accept := range []string{"text/plain;version=0.0.4", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					req := httptest.NewRequest("GET", "/metrics", nil)
					req.Header.Set("Accept", accept)
					h.ServeHTTP(httptest.NewRecorder(), req)
				}
			}()
		}
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("concurrent scrapes still running after 2 minutes: deadlocked")
	}
}
