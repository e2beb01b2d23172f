package metrics

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/mmapstore"
)

// The fast scrape renders text and OpenMetrics straight from the merger's state. These
// tests compare it, byte for byte, with a straightforward merge of the same directory (every
// file read afresh with mmapstore.ReadFile, merged in maps: refMerge) encoded by expfmt, on
// randomised directories that change between scrapes the ways a run directory does.

// encodeRef encodes families as Handler did before the fast path: expfmt's encoder for the
// negotiated format, leaving out a family it refuses.
func encodeRef(t *testing.T, fams []*dto.MetricFamily, format expfmt.Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, mf := range fams {
		n := buf.Len()
		if err := enc.Encode(mf); err != nil {
			buf.Truncate(n)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close()
	}
	return buf.Bytes()
}

func scrapeBody(t *testing.T, h http.Handler, accept string) ([]byte, expfmt.Format) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(rec.Body.Len()) {
		t.Errorf("Content-Length %q for %d bytes", cl, rec.Body.Len())
	}
	return rec.Body.Bytes(), expfmt.Format(rec.Header().Get("Content-Type"))
}

// scenario is a randomised run directory: worker Registries writing a catalogue of
// families with random label values and values, and a foreign file with what only expfmt
// writes exactly.
type scenario struct {
	t       *testing.T
	rnd     *rand.Rand
	dir     string
	clock   time.Time
	workers map[string]*scenarioWorker // by file id
}

type scenarioWorker struct {
	reg    *Registry
	update []func() // random updates of its series
}

// Label values that need escaping, or are unusual.
var scenarioValues = []string{"a", "b", `q"uote`, `back\slash`, "new\nline", "café", "😀", "", " ", "x,y", "{}", "=", "\\n"}

func (s *scenario) now() time.Time {
	s.clock = s.clock.Add(time.Millisecond)
	return s.clock
}

func (s *scenario) value() float64 {
	switch s.rnd.IntN(12) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1)
	case 2:
		return math.Inf(-1)
	case 3:
		return -s.rnd.Float64() * 100
	case 4:
		return float64(s.rnd.IntN(3_000_000)) // integers on both sides of a million
	case 5:
		return s.rnd.Float64() * 1e22
	case 6:
		return 0
	}
	return s.rnd.Float64() * 1000
}

func (s *scenario) label() string { return scenarioValues[s.rnd.IntN(len(scenarioValues))] }

// startWorker starts (or, for an id used before, restarts) the worker with file id id and
// has it register and write a random part of the catalogue.
func (s *scenario) startWorker(id string) {
	reg, err := NewRegistry(Options{Dir: s.dir, ID: id, Now: s.now})
	if err != nil {
		s.t.Fatal(err)
	}
	w := &scenarioWorker{reg: reg}
	s.workers[id] = w
	r := s.rnd
	if r.IntN(4) > 0 {
		c := reg.MustNewCounterVec(CounterOpts{Name: "http_requests_total", Help: "Requests."}, "method", "route")
		w.update = append(w.update, func() { c.With(s.label(), s.label()).Add(float64(r.IntN(5)) + r.Float64()) })
	}
	if r.IntN(2) > 0 {
		c := reg.MustNewCounter(CounterOpts{Name: "jobs_total", Help: "Jobs \\ done\nhere."})
		w.update = append(w.update, func() { c.Add(float64(r.IntN(1e7))) })
	}
	for _, mode := range GaugeModes() {
		if r.IntN(3) == 0 {
			continue
		}
		g := reg.MustNewGaugeVec(GaugeOpts{Name: "g_" + string(mode), Help: "Mode " + string(mode) + ".", Mode: mode}, "kind")
		w.update = append(w.update, func() { g.With(s.label()).Set(s.value()) })
	}
	// One gauge whose mode each worker picks: the first file in name order decides.
	mixed := reg.MustNewGauge(GaugeOpts{Name: "mixed", Help: "Mixed modes.", Mode: GaugeModes()[r.IntN(len(GaugeModes()))]})
	w.update = append(w.update, func() { mixed.Set(s.value()) })
	// One name written as a counter by some workers and a gauge by others.
	if r.IntN(2) == 0 {
		c := reg.MustNewCounter(CounterOpts{Name: "clash", Help: "As a counter."})
		w.update = append(w.update, func() { c.Add(r.Float64()) })
	} else {
		g := reg.MustNewGauge(GaugeOpts{Name: "clash", Help: "As a gauge.", Mode: GaugeLiveSum})
		w.update = append(w.update, func() { g.Set(s.value()) })
	}
	// Named like one of the master's families (see masterOwn), with another help.
	pg := reg.MustNewGauge(GaugeOpts{Name: "herd_process_goroutines", Help: "Goroutines (worker).", Mode: GaugeLiveAll})
	w.update = append(w.update, func() { pg.Set(float64(r.IntN(100))) })
	if r.IntN(4) > 0 {
		h := reg.MustNewHistogramVec(HistogramOpts{Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.001, 0.1, 1, 2.5, 1e6, 1e7}}, "route")
		w.update = append(w.update, func() { h.With(s.label()).Observe(s.value()) })
	}
	if r.IntN(2) > 0 {
		h := reg.MustNewHistogram(HistogramOpts{Name: "size_bytes", Help: "Sizes."})
		w.update = append(w.update, func() { h.Observe(r.Float64() * 20) })
	}
	if r.IntN(2) > 0 {
		sm := reg.MustNewSummaryVec(SummaryOpts{Name: "payload_bytes", Help: `Payload "sizes".`}, "kind")
		w.update = append(w.update, func() { sm.With(s.label()).Observe(s.value()) })
	}
	s.updates(20 + r.IntN(60))
}

// updates makes n random updates by random workers.
func (s *scenario) updates(n int) {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range s.workers {
			if !yield(id) {
				return
			}
		}
	})
	for range n {
		if len(ids) == 0 {
			return
		}
		w := s.workers[ids[s.rnd.IntN(len(ids))]]
		w.update[s.rnd.IntN(len(w.update))]()
	}
}

// kill ends the worker with file id id as the master sees a worker die: its files are
// released and its live gauge files removed.
func (s *scenario) kill(id string) {
	w := s.workers[id]
	if w == nil {
		return
	}
	if err := w.reg.Unmap(); err != nil {
		s.t.Fatal(err)
	}
	if err := RemoveLiveFiles(s.dir, id); err != nil {
		s.t.Fatal(err)
	}
	delete(s.workers, id)
}

// foreign writes a file no herd Registry would: names outside the legacy rules (which
// expfmt quotes or escapes), a __name__ label, and a histogram with a fractional count
// (which OpenMetrics 1.0 cannot carry).
func (s *scenario) foreign() {
	f, err := mmapstore.Open(filepath.Join(s.dir, "counter_9z.db"), mmapstore.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	for _, k := range []struct {
		family, sample string
		names, values  []string
		v              float64
	}{
		{"odd.name", "odd.name_total", []string{"a"}, []string{"x"}, 1},
		{"oddlabel", "oddlabel_total", []string{"a.b", "c"}, []string{"x", "y"}, 2},
		{"namelabel", "namelabel_total", []string{"__name__"}, []string{"not.legacy"}, 3},
		{"plain", "plain_total", []string{"k"}, []string{"v"}, s.rnd.Float64()},
	} {
		c, err := f.Cell(mmapstore.EncodeKey(k.family, k.sample, k.names, k.values, "Foreign."))
		if err != nil {
			s.t.Fatal(err)
		}
		c.Add(k.v)
	}
	sm, err := mmapstore.Open(filepath.Join(s.dir, "summary_9z.db"), mmapstore.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer sm.Close()
	for _, k := range []struct {
		sample string
		v      float64
	}{{"fs_count", 2.5}, {"fs_sum", 1}} {
		c, err := sm.Cell(mmapstore.EncodeKey("fs", k.sample, nil, nil, "Fractional count."))
		if err != nil {
			s.t.Fatal(err)
		}
		c.Add(k.v)
	}
	h, err := mmapstore.Open(filepath.Join(s.dir, "histogram_9z.db"), mmapstore.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer h.Close()
	for _, k := range []struct {
		sample, le string
		v          float64
	}{{"fh_bucket", "1.0", 0.5}, {"fh_bucket", "+Inf", 1}, {"fh_sum", "", 3}} {
		var names, values []string
		if k.le != "" {
			names, values = []string{"le"}, []string{k.le}
		}
		c, err := h.Cell(mmapstore.EncodeKey("fh", k.sample, names, values, "Fractional."))
		if err != nil {
			s.t.Fatal(err)
		}
		c.Add(k.v)
	}
}

// masterOwn is a Gatherer like the master's own families, one of them named like a
// family of the files.
func masterOwn() Gatherer {
	return GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{
			{Name: ptr("herd_process_goroutines"), Help: ptr("Goroutines (master)."), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: ptr("pid"), Value: ptr("master")}}, Gauge: &dto.Gauge{Value: ptr(9.0)}}}},
			{Name: ptr("herd_workers"), Help: ptr("Workers."), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: ptr("state"), Value: ptr("ready")}}, Gauge: &dto.Gauge{Value: ptr(2.0)}}}},
		}, nil
	})
}

const (
	acceptOM   = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	acceptOM01 = "application/openmetrics-text; version=0.0.1"
	acceptUTF8 = "text/plain;version=0.0.4;escaping=allow-utf-8"
)

// check scrapes the directory through the long-lived handlers, fast and general, alone and
// beside the master's own families, and compares every body with the reference. during,
// if not nil, runs in the middle of the first scrape, after its first file was merged.
func (s *scenario) check(step string, d *DirGatherer, during func()) {
	s.t.Helper()
	handlers := []struct {
		name   string
		h      http.Handler
		master bool
	}{
		{"fast", Handler(d, HandlerOpts{}), false},
		{"master", Handler(Gatherers{d, masterOwn()}, HandlerOpts{}), true},
		{"general", Handler(GathererFunc(d.Gather), HandlerOpts{}), false},
	}
	type scrape struct {
		name, accept string
		master       bool
		body         []byte
		format       expfmt.Format
	}
	var scrapes []scrape
	if during != nil {
		d.afterFile = func(string) { during(); d.afterFile = nil }
		body, format := scrapeBody(s.t, handlers[0].h, "")
		if d.afterFile != nil {
			s.t.Fatal("the mid-scrape change did not run")
		}
		scrapes = append(scrapes, scrape{"fast, mid-scrape change", "", false, body, format})
	}
	// The reference is read after the change: the scrape read the files it changed after it.
	ref := refMerge(s.t, s.dir)
	refMaster, err := Gatherers{GathererFunc(func() ([]*dto.MetricFamily, error) { return ref, nil }), masterOwn()}.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, accept := range []string{"", acceptOM, acceptOM01, acceptUTF8} {
		for _, c := range handlers {
			body, format := scrapeBody(s.t, c.h, accept)
			scrapes = append(scrapes, scrape{c.name, accept, c.master, body, format})
		}
	}
	for _, sc := range scrapes {
		want := ref
		if sc.master {
			want = refMaster
		}
		if w := encodeRef(s.t, want, sc.format); !bytes.Equal(sc.body, w) {
			s.t.Fatalf("%s: %s scrape, Accept %q: differs from the reference:\n%s", step, sc.name, sc.accept, firstDiff(sc.body, w))
		}
	}
}

// firstDiff shows the first line that differs.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, gl, wl)
		}
	}
	return "(same lines)"
}

func TestFastScrapeMatchesReference(t *testing.T) {
	t.Parallel()
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			testFastScrape(t, uint64(seed))
		})
	}
}

func testFastScrape(t *testing.T, seed uint64) {
	s := &scenario{t: t, rnd: rand.New(rand.NewPCG(seed, 18)), dir: t.TempDir(),
		clock: time.Unix(1_700_000_000, 0), workers: map[string]*scenarioWorker{}}
	t.Cleanup(func() {
		for _, w := range s.workers {
			w.reg.Unmap()
		}
	})
	for _, id := range []string{"0a", "1a", "2a", "3a"} {
		s.startWorker(id)
	}
	s.foreign()
	d := NewDirGatherer(s.dir, GathererOpts{OmitSelfMetrics: true})
	defer d.Close()
	s.check("start", d, nil)
	s.check("again", d, nil)

	// Values written into the mapped files: no size or mtime changes.
	s.updates(200)
	s.check("values changed in place", d, nil)

	// New series appended.
	for _, w := range s.workers {
		for range 5 {
			w.update[0]()
		}
	}
	s.check("series added", d, nil)

	// A worker dies between scrapes; its slot is reused by a successor with the same id,
	// which adopts its files and appends.
	s.kill("1a")
	s.check("1a died", d, nil)
	s.startWorker("1a")
	s.check("1a's slot reused", d, nil)

	// A worker dies in the middle of a scrape: its live gauge files go after the scrape
	// read the first file (counter files come before gauge files).
	s.check("3a dies mid-scrape", d, func() { s.kill("3a") })
	s.check("after 3a died", d, nil)

	// A file replaced by another of the same size at the same path: the successor in the
	// other lane made its files elsewhere and they were moved in.
	other := t.TempDir()
	s2 := &scenario{t: t, rnd: rand.New(rand.NewPCG(seed, 99)), dir: other, clock: s.clock, workers: map[string]*scenarioWorker{}}
	s2.startWorker("2a")
	s2.kill("2a")
	s.kill("2a")
	entries, err := os.ReadDir(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(other, e.Name()), filepath.Join(s.dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	s.check("2a's files replaced", d, nil)

	// And the rest of a run: workers come and go, values move.
	for i := range 6 {
		switch s.rnd.IntN(3) {
		case 0:
			s.kill([]string{"0a", "1a", "3a"}[s.rnd.IntN(3)])
		case 1:
			id := []string{"0a", "1a", "3a", "0b", "1b"}[s.rnd.IntN(5)]
			if s.workers[id] == nil {
				s.startWorker(id)
			}
		}
		s.updates(50)
		s.check(fmt.Sprintf("churn %d", i), d, nil)
	}
}
