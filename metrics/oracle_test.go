package metrics_test

import (
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// fakeClock returns a clock that advances one second on every reading, shared by simulated
// workers so that "set later" means a later timestamp.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Unix(1_700_000_000, 0)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// pythonPair returns two simulated workers with client_python's oracle pids as file ids.
func pythonPair(t *testing.T) (dir string, w123, w456 *metrics.Registry) {
	dir = t.TempDir()
	clock := fakeClock()
	w123 = metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "123", Now: clock})
	w456 = metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "456", Now: clock})
	return dir, w123, w456
}

func master(dir string) metrics.Gatherer {
	return metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true})
}

// The oracle cases of mmap-format.md (client_python's own tests), through the public API.
func TestOracleCounterSummaryHistogram(t *testing.T) {
	t.Parallel()
	dir, w123, w456 := pythonPair(t)
	for i, w := range []*metrics.Registry{w123, w456} {
		v := float64(i + 1)
		w.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Add(v)
		w.MustNewSummary(metrics.SummaryOpts{Name: "s", Help: "h"}).Observe(v)
		w.MustNewHistogram(metrics.HistogramOpts{Name: "h", Help: "h"}).Observe(v)
	}
	want := `# HELP c_total h
# TYPE c_total counter
c_total 3
# HELP s h
# TYPE s summary
s_sum 3
s_count 2
`
	metricstest.ExpectText(t, master(dir), want, "c_total", "s")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"h_count", nil, 2}, {"h_sum", nil, 3},
		{"h_bucket", []string{"le", "5.0"}, 2}, {"h_bucket", []string{"le", "1"}, 1},
		{"h_bucket", []string{"le", "0.5"}, 0}, {"h_bucket", []string{"le", "+Inf"}, 2},
	} {
		if got := metricstest.Value(t, master(dir), c.name, c.labels...); got != c.want {
			t.Errorf("%s%q = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// A dead worker's counts stay.
	metricstest.Kill(t, w123)
	metricstest.ExpectText(t, master(dir), want, "c_total", "s")
	// And a successor in the same slot continues them.
	again := metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "123"})
	again.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	if got := metricstest.Value(t, master(dir), "c_total"); got != 4 {
		t.Errorf("c_total after restart = %v, want 4", got)
	}
}

func TestOracleGaugeModes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode       metrics.GaugeMode
		v123, v456 float64
		first456   bool   // 456 sets first (mostrecent cases)
		alive      string // samples of g, alive
		dead       string // after 123 died
	}{
		{metrics.GaugeAll, 1, 2, false, "g{pid=\"123\"} 1\ng{pid=\"456\"} 2\n", "g{pid=\"123\"} 1\ng{pid=\"456\"} 2\n"},
		{metrics.GaugeLiveAll, 1, 2, false, "g{pid=\"123\"} 1\ng{pid=\"456\"} 2\n", "g{pid=\"456\"} 2\n"},
		{metrics.GaugeMin, 1, 2, false, "g 1\n", "g 1\n"},
		{metrics.GaugeLiveMin, 1, 2, false, "g 1\n", "g 2\n"},
		{metrics.GaugeMax, 1, 2, false, "g 2\n", "g 2\n"},
		{metrics.GaugeLiveMax, 2, 1, false, "g 2\n", "g 1\n"},
		{metrics.GaugeSum, 1, 2, false, "g 3\n", "g 3\n"},
		{metrics.GaugeLiveSum, 1, 2, false, "g 3\n", "g 2\n"},
		{metrics.GaugeMostRecent, 1, 2, true, "g 1\n", "g 1\n"},
		{metrics.GaugeLiveMostRecent, 1, 2, true, "g 1\n", "g 2\n"},
	}
	for _, c := range cases {
		t.Run(string(c.mode), func(t *testing.T) {
			t.Parallel()
			dir, w123, w456 := pythonPair(t)
			g123 := w123.MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: c.mode})
			g456 := w456.MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: c.mode})
			if c.first456 {
				g456.Set(c.v456)
				g123.Set(c.v123)
			} else {
				g123.Set(c.v123)
				g456.Set(c.v456)
			}
			head := "# HELP g h\n# TYPE g gauge\n"
			metricstest.ExpectText(t, master(dir), head+c.alive, "g")
			metricstest.Kill(t, w123)
			metricstest.ExpectText(t, master(dir), head+c.dead, "g")
		})
	}
}

// Every gauge operation, per mode, in one process: the merge of a single file is the value.
func TestGaugeOperations(t *testing.T) {
	t.Parallel()
	for _, mode := range metrics.GaugeModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			now := time.Unix(1_700_000_123, 500_000_000)
			reg := metricstest.NewRegistryWith(t, metrics.Options{Now: func() time.Time { return now }})
			v := reg.MustNewGaugeVec(metrics.GaugeOpts{Name: "g", Help: "h", Mode: mode}, "k")
			labels := []string{"k", "x"}
			if mode == metrics.GaugeAll || mode == metrics.GaugeLiveAll {
				labels = append(labels, "pid", metrics.DefaultID)
			}
			g := v.With("x")
			if mode == metrics.GaugeMostRecent || mode == metrics.GaugeLiveMostRecent {
				if _, err := metricstest.Lookup(reg, "g", labels...); err == nil {
					t.Fatal("a mostrecent gauge never set must not be exposed")
				}
			}
			steps := []struct {
				op   func()
				want float64
			}{
				{func() { g.Set(5) }, 5},
				{func() { g.Inc() }, 6},
				{func() { g.Dec() }, 5},
				{func() { g.Add(2.5) }, 7.5},
				{func() { g.Sub(0.5) }, 7},
				{func() { g.Add(-10) }, -3},
				{func() { g.SetToCurrentTime() }, 1_700_000_123.5},
			}
			for i, s := range steps {
				s.op()
				if got := metricstest.Value(t, reg, "g", labels...); got != s.want {
					t.Fatalf("step %d: g = %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// A mostrecent gauge that two workers set keeps the later write, whatever the order of files.
func TestMostRecentFollowsTime(t *testing.T) {
	t.Parallel()
	dir, w123, w456 := pythonPair(t)
	g123 := w123.MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: metrics.GaugeMostRecent})
	g456 := w456.MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: metrics.GaugeMostRecent})
	for i, step := range []struct {
		g    *metrics.Gauge
		op   func(*metrics.Gauge)
		want float64
	}{
		{g123, func(g *metrics.Gauge) { g.Set(10) }, 10},
		{g456, func(g *metrics.Gauge) { g.Set(20) }, 20},
		{g123, func(g *metrics.Gauge) { g.Inc() }, 11},
		{g456, func(g *metrics.Gauge) { g.Add(5) }, 25},
		{g123, func(g *metrics.Gauge) { g.Dec() }, 10},
	} {
		step.op(step.g)
		if got := metricstest.Value(t, master(dir), "g"); got != step.want {
			t.Fatalf("step %d: g = %v, want %v", i, got, step.want)
		}
	}
}
