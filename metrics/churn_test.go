package metrics_test

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// churn simulates herd's workers being replaced again and again, as prefork does on
// max-requests recycling and reloads: each slot has two lanes ("<slot>a", "<slot>b"); a
// replacement starts in the lane its predecessor does not use, and so continues the files
// of the worker two generations back; the predecessor then exits and the master removes its
// live gauge files (RemoveLiveFiles). Each worker counts requests in a family of series
// counters and reports itself in a livesum gauge.
type churn struct {
	tb      testing.TB
	dir     string
	series  int
	touch   int                 // series a worker that continues a file increments
	workers []*metrics.Registry // the live worker of each slot
	lanes   []byte
	want    []float64 // expected count of every series, all workers ever included
	born    []bool    // whether the file of each slot-lane exists yet
	n       int       // restarts so far
}

func newChurn(tb testing.TB, dir string, slots, series, touch int) *churn {
	c := &churn{tb: tb, dir: dir, series: series, touch: touch, workers: make([]*metrics.Registry, slots),
		lanes: make([]byte, slots), want: make([]float64, series), born: make([]bool, 2*slots)}
	for s := range slots {
		c.lanes[s] = 'a'
		c.workers[s] = c.start(s, 'a')
	}
	tb.Cleanup(func() {
		for _, w := range c.workers {
			w.Unmap()
		}
	})
	return c
}

func churnRoute(i int) string { return "/api/v1/items/" + strconv.Itoa(i/4) + "/{id}" }

// start starts the worker of slot in lane: the first worker of a lane creates every series,
// a later one increments a few (touch) of them.
func (c *churn) start(slot int, lane byte) *metrics.Registry {
	id := strconv.Itoa(slot) + string(lane)
	w, err := metrics.NewRegistry(metrics.Options{Dir: c.dir, ID: id})
	if err != nil {
		c.tb.Fatal(err)
	}
	req := w.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, "method", "route", "code")
	alive := w.MustNewGauge(metrics.GaugeOpts{Name: "workers_alive", Help: "Live workers.", Mode: metrics.GaugeLiveSum})
	alive.Set(1)
	b := &c.born[2*slot+int(lane-'a')]
	if !*b {
		*b = true
		for i := range c.series {
			req.With(benchMethods[i%4], churnRoute(i), "200").Inc()
			c.want[i]++
		}
		return w
	}
	for j := range c.touch {
		i := (c.n*c.touch + j) % c.series
		req.With(benchMethods[i%4], churnRoute(i), "200").Inc()
		c.want[i]++
	}
	return w
}

// restart replaces the worker of slot: the successor starts in the other lane, then the
// predecessor exits and its live files are removed.
func (c *churn) restart(slot int) {
	old, lane := c.workers[slot], c.lanes[slot]^('a'^'b')
	c.n++
	c.workers[slot], c.lanes[slot] = c.start(slot, lane), lane
	if err := old.Unmap(); err != nil { // the process exits: its mappings go
		c.tb.Fatal(err)
	}
	if err := metrics.RemoveLiveFiles(c.dir, old.ID()); err != nil {
		c.tb.Fatal(err)
	}
}

// files returns the number of metric files in the directory.
func (c *churn) files() int {
	m, err := filepath.Glob(filepath.Join(c.dir, "*.db"))
	if err != nil {
		c.tb.Fatal(err)
	}
	return len(m)
}

// After 1,000 worker restarts the directory holds exactly as many files as after the first
// replacement of every slot (two lanes' counter files per slot, the live workers' gauge
// files), and the merged view counts every request any worker ever served.
func TestRestartChurnKeepsFileCount(t *testing.T) {
	t.Parallel()
	const slots, series, restarts = 4, 24, 1000
	dir := t.TempDir()
	c := newChurn(t, dir, slots, series, 5)
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{}) // the master's, alive throughout
	defer g.Close()
	for s := range slots {
		c.restart(s)
	}
	first := c.files()
	if want := slots*2 + slots; first != want {
		t.Fatalf("after one replacement per slot: %d files, want %d", first, want)
	}
	for i := slots; i < restarts; i++ {
		c.restart(i % slots)
		if i%50 == 0 {
			if _, err := g.Gather(); err != nil { // the master scrapes now and then
				t.Fatal(err)
			}
		}
	}
	if got := c.files(); got != first {
		t.Errorf("after %d restarts: %d files, want %d as after the first replacements", restarts, got, first)
	}
	if v := metricstest.Value(t, g, "herd_metrics_files"); v != float64(first) {
		t.Errorf("herd_metrics_files = %v, want %d", v, first)
	}
	if v := metricstest.Value(t, g, "workers_alive"); v != slots {
		t.Errorf("workers_alive = %v, want %d (dead workers' live gauges dropped)", v, slots)
	}
	for i := range series {
		got := metricstest.Value(t, g, "http_requests_total", "method", benchMethods[i%4], "route", churnRoute(i), "code", "200")
		if got != c.want[i] {
			t.Errorf("series %d: %v, want %v (every worker's requests, dead or alive)", i, got, c.want[i])
		}
	}
}

// copyDir copies the metric files of src into a new directory: a snapshot that a second
// gatherer can read while src goes on changing.
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	ms, _ := filepath.Glob(filepath.Join(src, "*.db"))
	for _, m := range ms {
		in, err := os.Open(m)
		if err != nil {
			tb.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, filepath.Base(m)))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			tb.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

// BenchmarkRestartChurn: 16 worker slots x 5,000 series. "first" is the directory once every
// slot has been replaced once (both lanes in use: the steady state of a server that recycles
// workers), snapshotted and served by its own long-lived gatherer; "after" is the same
// directory after 1,000 more restarts (a worker creates its series in its lane's file once,
// its successors continue that file and increment a hundred series each), served by the
// master's gatherer that lived through all of them, scraping after every restart. Scrapes of
// the two alternate; it reports both medians, their ratio (after/first) and the file counts.
func BenchmarkRestartChurn(b *testing.B) {
	const slots, restarts = benchWorkers, 1000
	dir := b.TempDir()
	c := newChurn(b, dir, slots, benchSeries, benchSeries/50)
	start := c.files()
	for s := range slots {
		c.restart(s)
	}
	snap := copyDir(b, dir)
	filesFirst := c.files()
	master := newScraper(dir, acceptText, false)
	defer master.g.Close()
	master.scrape(b)
	setup := time.Now()
	for i := slots; i < slots+restarts; i++ {
		c.restart(i % slots)
		master.scrape(b)
	}
	b.Logf("%d restarts with a scrape after each: %v", restarts, time.Since(setup).Round(time.Millisecond))
	filesAfter := c.files()
	if filesAfter != filesFirst {
		b.Fatalf("file count grew from %d to %d", filesFirst, filesAfter)
	}
	first := newScraper(snap, acceptText, false)
	defer first.g.Close()
	first.scrape(b)

	var tFirst, tAfter []float64
	for b.Loop() {
		t0 := time.Now()
		first.scrape(b)
		t1 := time.Now()
		master.scrape(b)
		tFirst, tAfter = append(tFirst, float64(t1.Sub(t0))), append(tAfter, float64(time.Since(t1)))
	}
	f, a := median(tFirst), median(tAfter)
	b.ReportMetric(f/1e6, "first-ms")
	b.ReportMetric(a/1e6, "after-ms")
	b.ReportMetric(a/f, "after/first")
	b.ReportMetric(float64(start), "files-start")
	b.ReportMetric(float64(filesFirst), "files-first")
	b.ReportMetric(float64(filesAfter), "files-after")
}
