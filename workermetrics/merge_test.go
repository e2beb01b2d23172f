package workermetrics

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// parse reads exposition text into families sorted by name.
func parse(t testing.TB, text string) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	var out []*dto.MetricFamily
	for _, mf := range m {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// decoded passes families through a snapshot, as they reach the master
// from the worker with file id worker.
func decoded(t *testing.T, m *merger, worker string, mfs []*dto.MetricFamily) []family {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(appendSnapshot(nil, 1, mfs))
	_, fams, err := readSnapshot(&buf, newDecoder(worker, m.perWorkerFamily))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// fams parses exposition text into decoded families (a dead worker's).
func fams(t *testing.T, m *merger, text string) []family {
	t.Helper()
	return decoded(t, m, "dead", parse(t, text))
}

// live is the live source of the worker with file id worker that gathered
// mfs.
func live(t *testing.T, m *merger, worker string, mfs ...*dto.MetricFamily) source {
	t.Helper()
	return source{worker: worker, fams: decoded(t, m, worker, mfs), perWorker: true}
}

// workers builds live sources from exposition texts: worker ids "0a", "1a", ...
func workers(t *testing.T, m *merger, texts ...string) []source {
	t.Helper()
	var srcs []source
	for i, text := range texts {
		srcs = append(srcs, live(t, m, string(rune('0'+i))+"a", parse(t, text)...))
	}
	return srcs
}

// served returns a decoded or summed family as the master serves it.
func served(f *family) *dto.MetricFamily {
	if f.perWorker {
		return perWorkerSeries(f.mf, []*family{f})
	}
	return summedDTO(f)
}

// mfs returns the families as served.
func mfs(fs []family) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for i := range fs {
		out = append(out, served(&fs[i]))
	}
	return out
}

func newTestMerger(herd string, t *testing.T) *merger {
	m := &merger{perWorker: DefaultPerWorker}
	if herd != "" {
		m.reserve(familyTypes(parse(t, herd)))
	} else {
		m.reserve(nil)
	}
	return m
}

// gathered wraps families as a Gatherer for metricstest.
func gathered(fams []*dto.MetricFamily) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })
}

func TestCountersAreSummedWithoutWorkerLabel(t *testing.T) {
	m := newTestMerger("", t)
	out, drops := m.merge(workers(t, m, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{kind="a"} 3
jobs_total{kind="b"} 1
`, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{kind="a"} 4
jobs_total{kind="c"} 2
`), fams(t, m, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{kind="a"} 100
jobs_total{kind="d"} 7
`))
	metricstest.ExpectText(t, gathered(out), `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{kind="a"} 107
jobs_total{kind="b"} 1
jobs_total{kind="c"} 2
jobs_total{kind="d"} 7
`)
	if drops != [numDropReasons]int{} {
		t.Errorf("drops = %v, want none", drops)
	}
}

func TestClassicHistogramsAreSummed(t *testing.T) {
	m := newTestMerger("", t)
	h := func(b1, b2, count, sum string) string {
		return `
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{route="/x",le="0.1"} ` + b1 + `
lat_seconds_bucket{route="/x",le="1"} ` + b2 + `
lat_seconds_bucket{route="/x",le="+Inf"} ` + count + `
lat_seconds_sum{route="/x"} ` + sum + `
lat_seconds_count{route="/x"} ` + count + `
`
	}
	out, _ := m.merge(workers(t, m, h("1", "2", "3", "4.5"), h("10", "20", "30", "0.5")), fams(t, m, h("100", "100", "100", "1")))
	metricstest.ExpectText(t, gathered(out), h("111", "122", "133", "6"))
}

func TestHistogramsWithDifferentBoundsKeepTheCommonOnes(t *testing.T) {
	m := newTestMerger("", t)
	out, _ := m.merge(workers(t, m, `
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 1
lat_seconds_bucket{le="0.5"} 2
lat_seconds_bucket{le="1"} 3
lat_seconds_bucket{le="+Inf"} 4
lat_seconds_sum 1
lat_seconds_count 4
`, `
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 10
lat_seconds_bucket{le="1"} 20
lat_seconds_bucket{le="2"} 30
lat_seconds_bucket{le="+Inf"} 40
lat_seconds_sum 2
lat_seconds_count 40
`), nil)
	metricstest.ExpectText(t, gathered(out), `
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 11
lat_seconds_bucket{le="1"} 23
lat_seconds_bucket{le="+Inf"} 44
lat_seconds_sum 3
lat_seconds_count 44
`)
}

func TestGaugesSummariesAndProcessFamiliesArePerWorker(t *testing.T) {
	m := newTestMerger("", t)
	w := func(q, g, cpu string) string {
		return `
# HELP queue Queued.
# TYPE queue gauge
queue{kind="a"} ` + g + `
# HELP rpc_seconds RPC time.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} ` + q + `
rpc_seconds_sum 10
rpc_seconds_count 5
# HELP temp Untyped.
# TYPE temp untyped
temp 1
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total ` + cpu + `
# HELP go_goroutines Goroutines.
# TYPE go_goroutines gauge
go_goroutines 7
`
	}
	// The dead workers' totals hold only counters and histograms: a
	// process_ counter folded by mistake would not show.
	out, _ := m.merge(workers(t, m, w("0.1", "3", "1.5"), w("0.2", "4", "2.5")), nil)
	metricstest.ExpectText(t, gathered(out), `
# HELP queue Queued.
# TYPE queue gauge
queue{kind="a",worker="0a"} 3
queue{kind="a",worker="1a"} 4
# HELP rpc_seconds RPC time.
# TYPE rpc_seconds summary
rpc_seconds{worker="0a",quantile="0.5"} 0.1
rpc_seconds_sum{worker="0a"} 10
rpc_seconds_count{worker="0a"} 5
rpc_seconds{worker="1a",quantile="0.5"} 0.2
rpc_seconds_sum{worker="1a"} 10
rpc_seconds_count{worker="1a"} 5
# HELP temp Untyped.
# TYPE temp untyped
temp{worker="0a"} 1
temp{worker="1a"} 1
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total{worker="0a"} 1.5
process_cpu_seconds_total{worker="1a"} 2.5
# HELP go_goroutines Goroutines.
# TYPE go_goroutines gauge
go_goroutines{worker="0a"} 7
go_goroutines{worker="1a"} 7
`)
	// The worker label sits in name order among the others.
	for _, mf := range out {
		for _, mt := range mf.Metric {
			if !sort.SliceIsSorted(mt.Label, func(i, j int) bool { return mt.Label[i].GetName() < mt.Label[j].GetName() }) {
				t.Errorf("%s: labels not sorted: %v", mf.GetName(), mt.Label)
			}
		}
	}
}

func TestFoldKeepsCountersAndHistogramsOnly(t *testing.T) {
	m := newTestMerger("", t)
	snap := fams(t, m, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 5
# HELP queue Queued.
# TYPE queue gauge
queue 3
# HELP go_gc_cycles_total GC cycles.
# TYPE go_gc_cycles_total counter
go_gc_cycles_total 9
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="1"} 1
lat_seconds_bucket{le="+Inf"} 2
lat_seconds_sum 3
lat_seconds_count 2
`)
	dead := m.fold(nil, snap)
	dead = m.fold(dead, snap)
	metricstest.ExpectText(t, gathered(mfs(dead)), `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 10
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="1"} 2
lat_seconds_bucket{le="+Inf"} 4
lat_seconds_sum 6
lat_seconds_count 4
`)
	// A later worker giving the name another type does not erase the totals.
	dead = m.fold(dead, fams(t, m, "# HELP jobs_total Jobs.\n# TYPE jobs_total gauge\njobs_total 1\n"))
	metricstest.ExpectText(t, gathered(mfs(dead)), "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 10\n", "jobs_total")
}

func TestDroppedFamilies(t *testing.T) {
	const herd = `
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 1
# HELP http_request_duration_seconds Latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="+Inf"} 1
http_request_duration_seconds_sum 1
http_request_duration_seconds_count 1
`
	const ok = "# HELP ok_total OK.\n# TYPE ok_total counter\nok_total 1\n"
	for _, tc := range []struct {
		name    string
		workers []string
		reason  dropReason
	}{
		{"same name as a herd family", []string{"# HELP http_requests_total R.\n# TYPE http_requests_total counter\nhttp_requests_total 1\n"}, dropHerdName},
		{"OpenMetrics name of a herd counter", []string{"# HELP http_requests G.\n# TYPE http_requests gauge\nhttp_requests 1\n"}, dropHerdName},
		{"a sample name of a herd histogram", []string{"# HELP http_request_duration_seconds_count G.\n# TYPE http_request_duration_seconds_count gauge\nhttp_request_duration_seconds_count 1\n"}, dropHerdName},
		{"herd_ prefix", []string{"# HELP herd_mine G.\n# TYPE herd_mine gauge\nherd_mine 1\n"}, dropHerdName},
		{"types differ between workers", []string{
			"# HELP x X.\n# TYPE x gauge\nx 1\n",
			"# HELP x X.\n# TYPE x untyped\nx 1\n",
		}, dropTypeConflict},
		{"per-worker family with a worker label", []string{"# HELP g G.\n# TYPE g gauge\ng{worker=\"me\"} 1\n"}, dropWorkerLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMerger(herd, t)
			texts := append([]string(nil), tc.workers...)
			texts[0] += ok
			out, drops := m.merge(workers(t, m, texts...), nil)
			var want [numDropReasons]int
			want[tc.reason] = 1
			if drops != want {
				t.Errorf("drops = %v, want %v", drops, want)
			}
			if len(out) != 1 || out[0].GetName() != "ok_total" {
				t.Errorf("families %v, want only ok_total", names(out))
			}
		})
	}
}

func TestTypeConflictWithTheDeadTotals(t *testing.T) {
	m := newTestMerger("", t)
	_, drops := m.merge(workers(t, m, "# HELP x X.\n# TYPE x gauge\nx 1\n"), fams(t, m, "# HELP x X.\n# TYPE x counter\nx 1\n"))
	if drops[dropTypeConflict] != 1 {
		t.Errorf("drops = %v, want one type conflict", drops)
	}
}

func TestInvalidFamiliesAreDropped(t *testing.T) {
	counter := dto.MetricType_COUNTER
	gauge := dto.MetricType_GAUGE
	hist := dto.MetricType_HISTOGRAM
	lp := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: new(n), Value: new(v)} }
	for _, tc := range []struct {
		name string
		mf   *dto.MetricFamily
	}{
		{"counter without a counter value", &dto.MetricFamily{Name: new("c_total"), Type: &counter,
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: new(1.0)}}}}},
		{"gauge without a gauge value", &dto.MetricFamily{Name: new("g"), Type: &gauge,
			Metric: []*dto.Metric{{Counter: &dto.Counter{Value: new(1.0)}}}}},
		{"a series twice", &dto.MetricFamily{Name: new("c_total"), Type: &counter, Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("a", "1")}, Counter: &dto.Counter{Value: new(1.0)}},
			{Label: []*dto.LabelPair{lp("a", "1")}, Counter: &dto.Counter{Value: new(2.0)}},
		}}},
		{"a gauge series twice", &dto.MetricFamily{Name: new("g"), Type: &gauge, Metric: []*dto.Metric{
			{Gauge: &dto.Gauge{Value: new(1.0)}}, {Gauge: &dto.Gauge{Value: new(2.0)}},
		}}},
		{"a label name twice", &dto.MetricFamily{Name: new("c_total"), Type: &counter, Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("a", "1"), lp("a", "2")}, Counter: &dto.Counter{Value: new(1.0)}},
		}}},
		{"a reserved label name", &dto.MetricFamily{Name: new("c_total"), Type: &counter, Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("__name__", "x")}, Counter: &dto.Counter{Value: new(1.0)}},
		}}},
		{"le on a histogram", &dto.MetricFamily{Name: new("h"), Type: &hist, Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("le", "1")}, Histogram: &dto.Histogram{}},
		}}},
		{"an unreadable native histogram", &dto.MetricFamily{Name: new("h"), Type: &hist, Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{Schema: new(int32(9))}},
		}}},
		// OpenMetrics 1.0 has no float histograms: served, one would cut
		// an OpenMetrics scrape short.
		{"a float histogram", &dto.MetricFamily{Name: new("h"), Type: &hist, Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{SampleCountFloat: new(2.0), SampleSum: new(1.0)}},
		}}},
		{"a float native histogram", &dto.MetricFamily{Name: new("h"), Type: &hist, Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{Schema: new(int32(0)), ZeroThreshold: new(0.0), ZeroCountFloat: new(1.0), SampleSum: new(1.0)}},
		}}},
		{"a float gauge histogram", &dto.MetricFamily{Name: new("gh"), Type: dto.MetricType_GAUGE_HISTOGRAM.Enum(), Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{SampleSum: new(1.0), Bucket: []*dto.Bucket{{UpperBound: new(1.0), CumulativeCountFloat: new(1.0)}}}},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMerger("", t)
			out, drops := m.merge([]source{live(t, m, "0a", tc.mf)}, nil)
			if len(out) != 0 || drops[dropInvalid] != 1 {
				t.Errorf("families %v, drops %v: want none, one invalid", names(out), drops)
			}
		})
	}
}

func TestUnsortedLabelsAreSorted(t *testing.T) {
	v := 1.0
	counter := dto.MetricType_COUNTER
	mk := func(a, b string) *dto.MetricFamily {
		return &dto.MetricFamily{Name: new("c_total"), Help: new("C."), Type: &counter, Metric: []*dto.Metric{{
			Label:   []*dto.LabelPair{{Name: new("z"), Value: new(a)}, {Name: new("a"), Value: new(b)}},
			Counter: &dto.Counter{Value: &v},
		}}}
	}
	m := newTestMerger("", t)
	out, _ := m.merge([]source{live(t, m, "0a", mk("1", "2")), live(t, m, "1a", mk("1", "2"))}, nil)
	metricstest.ExpectText(t, gathered(out), "# HELP c_total C.\n# TYPE c_total counter\nc_total{a=\"2\",z=\"1\"} 2\n")
}

func TestDuplicateIDKeepsTheNewestPerWorkerSeries(t *testing.T) {
	m := newTestMerger("", t)
	srcs := []source{
		live(t, m, "0a", parse(t, "# HELP g G.\n# TYPE g gauge\ng 2\n# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n")...),
		live(t, m, "0a", parse(t, "# HELP g G.\n# TYPE g gauge\ng 1\n# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n")...),
	}
	srcs[0].started, srcs[1].started = 2, 1
	markDuplicateIDs(srcs)
	out, drops := m.merge(srcs, nil)
	metricstest.ExpectText(t, gathered(out), `
# HELP g G.
# TYPE g gauge
g{worker="0a"} 2
# HELP c_total C.
# TYPE c_total counter
c_total 2
`)
	if drops != [numDropReasons]int{} {
		t.Errorf("drops = %v", drops)
	}
}

func names(fams []*dto.MetricFamily) []string {
	var out []string
	for _, mf := range fams {
		out = append(out, mf.GetName())
	}
	return out
}
