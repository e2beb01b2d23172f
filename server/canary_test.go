package server

import (
	"flag"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/prefork"
)

// fakeWorker writes the metric files of one worker id, through the real middleware.
type fakeWorker struct {
	reg *metrics.Registry
	h   http.Handler
}

func newFakeWorker(t *testing.T, dir, id string) *fakeWorker {
	t.Helper()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Unmap() })
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/ok", func(w http.ResponseWriter, r *http.Request) {})
	r.Get("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond) // the latency being measured, not synchronisation
	})
	return &fakeWorker{reg: reg, h: r}
}

func (w *fakeWorker) serve(path string, n int) {
	for range n {
		w.h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
}

func TestCanaryJudge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		others  int
		canary  func(c *fakeWorker)
		ok      bool
		whyPart string
	}{
		{"as good as the others", 2, func(c *fakeWorker) { c.serve("/ok", 100) }, true, "5xx: canary 0 of 100 (0.00%), others 2 of 202 (0.99%)"},
		{"5xx within the margin", 2, func(c *fakeWorker) { c.serve("/ok", 99); c.serve("/fail", 1) }, true, "5xx: canary 1 of 100 (1.00%), others 2 of 202 (0.99%), allowed 1.00 points more"},
		{"5xx beyond the margin", 2, func(c *fakeWorker) { c.serve("/ok", 98); c.serve("/fail", 2) }, false, "worse 5xx: canary 2 of 100 (2.00%)"},
		{"more 5xx", 2, func(c *fakeWorker) { c.serve("/ok", 90); c.serve("/fail", 10) }, false, "worse 5xx: canary 10 of 100 (10.00%)"},
		{"slower", 2, func(c *fakeWorker) { c.serve("/slow", 20) }, false, "; worse p99: canary "},
		{"no request", 2, func(c *fakeWorker) {}, true, "the canary served no request in its window"},
		{"no other worker", 0, func(c *fakeWorker) { c.serve("/ok", 9); c.serve("/fail", 1) }, false, "(no other worker: 5xx compared with none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// The canary starts in lane b, whose files an earlier worker left full of
			// failures: only what it serves in its window counts.
			earlier := newFakeWorker(t, dir, "0b")
			earlier.serve("/fail", 50)
			earlier.reg.Unmap()
			canary := newFakeWorker(t, dir, "0b")
			var others []*fakeWorker
			var infos []prefork.WorkerInfo
			for i := range tc.others {
				id := string(rune('1'+i)) + "a"
				w := newFakeWorker(t, dir, id)
				w.serve("/fail", 20) // before the window: does not count
				others = append(others, w)
				infos = append(infos, prefork.WorkerInfo{Slot: i + 1, ID: id})
			}
			j := newCanaryJudge(dir, CanaryConfig{Window: time.Minute})
			ci := prefork.WorkerInfo{Slot: 0, ID: "0b"}
			j.Start(ci, infos)
			for _, w := range others {
				w.serve("/ok", 100)
				w.serve("/fail", 1)
			}
			tc.canary(canary)
			ok, why := j.Judge(ci, infos)
			if ok != tc.ok || !strings.Contains(why, tc.whyPart) {
				t.Errorf("verdict %v %q, want %v and %q", ok, why, tc.ok, tc.whyPart)
			}
		})
	}
}

func TestCanaryJudgeSkipsWorkersWithoutBaseline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	canary := newFakeWorker(t, dir, "0b")
	// A worker that replaced an old one during the window continues files full of failures
	// its predecessor left: without a baseline it is left out.
	newcomer := newFakeWorker(t, dir, "1b")
	newcomer.serve("/fail", 100)
	old := newFakeWorker(t, dir, "2a")
	j := newCanaryJudge(dir, CanaryConfig{})
	ci := prefork.WorkerInfo{ID: "0b"}
	j.Start(ci, []prefork.WorkerInfo{{Slot: 2, ID: "2a"}})
	canary.serve("/ok", 50)
	canary.serve("/fail", 5)
	old.serve("/ok", 50)
	ok, why := j.Judge(ci, []prefork.WorkerInfo{{Slot: 1, ID: "1b"}, {Slot: 2, ID: "2a"}})
	if ok || !strings.Contains(why, "others 0 of 50") {
		t.Errorf("verdict %v %q, want bad against the one worker with a baseline", ok, why)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	for _, tc := range []struct {
		q       float64
		buckets map[float64]float64
		want    float64
	}{
		{0.5, map[float64]float64{0.1: 50, 0.2: 50, inf: 0}, 0.1},
		{0.99, map[float64]float64{0.1: 50, 0.2: 50, inf: 0}, 0.198},
		{0.99, map[float64]float64{0.005: 100, 0.01: 0, inf: 0}, 0.00495},
		{0.99, map[float64]float64{0.1: 10, 0.2: 0, inf: 90}, 0.2}, // in +Inf: the highest bound
		{0.5, map[float64]float64{0.1: 0, 0.2: 4, inf: 0}, 0.15},
	} {
		got, n := quantile(tc.q, tc.buckets)
		if math.Abs(got-tc.want) > 1e-9 || n == 0 {
			t.Errorf("quantile(%v, %v) = %v (%v observations), want %v", tc.q, tc.buckets, got, n, tc.want)
		}
	}
	if _, n := quantile(0.99, map[float64]float64{0.1: 0, inf: 0}); n != 0 {
		t.Errorf("empty histogram: %v observations", n)
	}
}

func TestCanaryFlags(t *testing.T) {
	t.Parallel()
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if c := cfg.Canary; c.Window != Off || c.Max5xxRatio != 0.01 || c.MaxP99Ratio != 2 {
		t.Errorf("defaults %+v, want off, 0.01, 2", c)
	}
	if err := fs.Parse([]string{"-reload-canary", "30s", "-canary-max-5xx-ratio", "0.05", "-canary-max-p99-ratio", "1.5"}); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Canary; c.Window != 30*time.Second || c.Max5xxRatio != 0.05 || c.MaxP99Ratio != 1.5 || c.check() != nil {
		t.Errorf("parsed %+v (%v)", c, c.check())
	}
	if err := fs.Parse([]string{"-reload-canary", "off"}); err != nil || cfg.withDefaults().Canary.Window != Off {
		t.Errorf("-reload-canary off: %v, window %v", err, cfg.withDefaults().Canary.Window)
	}
	for _, tc := range []struct {
		c    CanaryConfig
		want string
	}{
		{CanaryConfig{Max5xxRatio: 2}, "-canary-max-5xx-ratio: must be between 0 and 1"},
		{CanaryConfig{Max5xxRatio: math.NaN()}, "-canary-max-5xx-ratio: must be between 0 and 1"},
		{CanaryConfig{MaxP99Ratio: 0.5}, "-canary-max-p99-ratio: must be 1 or more"},
		{CanaryConfig{MaxP99Ratio: math.Inf(1)}, "-canary-max-p99-ratio: must be 1 or more"},
	} {
		if err := tc.c.check(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("check(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestReloadMetrics(t *testing.T) {
	t.Parallel()
	fams, err := reloadMetrics(func() prefork.Counters {
		return prefork.Counters{ReloadsOK: 3, ReloadsRolledBack: 1}
	}).Gather()
	if err != nil || len(fams) != 1 || fams[0].GetName() != "herd_reloads_total" || fams[0].GetHelp() == "" {
		t.Fatalf("families %v, %v", fams, err)
	}
	got := map[string]float64{}
	for _, m := range fams[0].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if got["ok"] != 3 || got["rolled_back"] != 1 || got["aborted"] != 0 || len(got) != 3 {
		t.Errorf("herd_reloads_total %v, want ok 3, rolled_back 1, aborted 0", got)
	}
}
