package metrics_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/mmapstore"
)

// The scrape benchmarks: the master's scrape of 16 worker files x 5,000 series, side by
// side with client_python's MultiProcessCollector, and after 1,000 worker restarts.
// docs/performance.md has the figures and the commands.

const benchWorkers, benchSeries = 16, 5000

// writeWorkers makes one worker Registry per id in dir and creates series counter series
// in each (the same series in every worker, as workers of one app have), with values.
// Each Registry is unmapped once written: its files stay for the scrapes, and its 5,000
// series handles leave this process's heap, as they are in worker processes under herd,
// so that a collection during a scrape marks only what the scraping process holds.
func writeWorkers(tb testing.TB, dir string, layout mmapstore.Layout, ids []string, series int) {
	tb.Helper()
	for w, id := range ids {
		reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id, Layout: layout})
		if err != nil {
			tb.Fatal(err)
		}
		v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, "method", "route", "code")
		for i := range series {
			v.With(benchMethods[i%4], fmt.Sprintf("/api/v1/items/%d/{id}", i/4), "200").Add(float64(i + w))
		}
		if err := reg.Unmap(); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
}

var benchMethods = [...]string{"GET", "POST", "PUT", "DELETE"}

func laneIDs(n int, lane string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i) + lane
	}
	return ids
}

// bufferWriter is an http.ResponseWriter that keeps the body in a reused buffer.
type bufferWriter struct {
	h    http.Header
	body bytes.Buffer
	code int
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *bufferWriter) WriteHeader(code int)        { w.code = code }

// scraper serves one directory with Handler(NewDirGatherer(dir)), as herd-exporter serves it
// (and herd's master, with its own gauges beside), answering one kind of scrape: the text
// format 0.0.4 (what client_python's generate_latest writes), or what Prometheus asks for
// (OpenMetrics, gzip).
type scraper struct {
	g   *metrics.DirGatherer
	h   http.Handler
	req *http.Request
	w   bufferWriter
}

func newScraper(dir, accept string, gzip bool) *scraper {
	s := &scraper{g: metrics.NewDirGatherer(dir, metrics.GathererOpts{}), w: bufferWriter{h: http.Header{}}}
	s.req = newScrapeRequest(accept, gzip)
	s.h = metrics.Handler(s.g, metrics.HandlerOpts{})
	return s
}

// scrape serves one scrape and returns the size of the response body.
func (s *scraper) scrape(tb testing.TB) int {
	serve(tb, s.h, &s.w, s.req)
	return s.w.body.Len()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pythonCollector is a client_python process that times one collect() + generate_latest()
// of a directory per request, with time.perf_counter inside Python.
type pythonCollector struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startPythonCollector(tb testing.TB, dir string) *pythonCollector {
	tb.Helper()
	requirePython(tb) // fails, never skips, without Python
	cmd := exec.Command(python, filepath.Join("testdata", "python", "bench_collect.py"), dir)
	cmd.Env = []string{"PYTHONDONTWRITEBYTECODE=1"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("bench_collect.py: %v\n%s", err, stderr.Bytes())
		}
	})
	return &pythonCollector{cmd: cmd, in: in, out: bufio.NewScanner(out)}
}

// round asks for one timed collection and returns Python's own timings (wall and CPU) and
// the size of its exposition.
func (p *pythonCollector) round(tb testing.TB) (wall, cpu time.Duration, size int) {
	tb.Helper()
	if _, err := io.WriteString(p.in, "go\n"); err != nil {
		tb.Fatalf("bench_collect.py: %v", err)
	}
	if !p.out.Scan() {
		tb.Fatalf("bench_collect.py stopped: %v", p.out.Err())
	}
	f := strings.Fields(p.out.Text())
	if len(f) != 3 {
		tb.Fatalf("bench_collect.py: bad line %q", p.out.Text())
	}
	w, err1 := strconv.ParseFloat(f[0], 64)
	c, err2 := strconv.ParseFloat(f[1], 64)
	n, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil {
		tb.Fatalf("bench_collect.py: bad line %q", p.out.Text())
	}
	return time.Duration(w * float64(time.Second)), time.Duration(c * float64(time.Second)), n
}

// BenchmarkScrapeVsPython serves the same 16 x 5,000 legacy-layout files with herd's
// DirGatherer through Handler (steady state: the master's and herd-exporter's long-lived
// gatherer), once asking for the text format and once as Prometheus asks (OpenMetrics,
// gzip), and with client_python 0.16's MultiProcessCollector (collect + generate_latest,
// timed inside Python with time.perf_counter), alternating the three per iteration. It
// reports the medians and the ratios (python/herd: how many times faster herd is); ns/op
// is herd's median text scrape. Each iteration takes about as long as a Python round (a
// second or so): run it with -benchtime=Nx.
func BenchmarkScrapeVsPython(b *testing.B) {
	dir := b.TempDir()
	writeWorkers(b, dir, mmapstore.Legacy, laneIDs(benchWorkers, "a"), benchSeries)
	py := startPythonCollector(b, dir)

	// Both read the same bytes and agree on what they mean.
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true})
	if err := metricstest.CompareText(g, runPython(b, dir, "collect.py")); err != nil {
		b.Fatalf("herd and Python disagree on the benchmark files: %v", err)
	}
	g.Close() // the master has one gatherer: drop this one and its garbage before timing
	runtime.GC()
	text, prom := newScraper(dir, acceptText, false), newScraper(dir, acceptPrometheus, true)
	defer text.g.Close()
	defer prom.g.Close()
	text.scrape(b) // warm: the master's gatherer parsed the keys long ago
	prom.scrape(b)
	py.round(b) // Python's first round pays its imports' lazy costs

	var herd, herdCPU, herdProm, herdPromCPU, pyt, pyCPU []float64
	timed := func(s *scraper, wall, cpu *[]float64) int {
		c, start := cpuTime(), time.Now()
		n := s.scrape(b)
		*wall = append(*wall, float64(time.Since(start).Nanoseconds()))
		*cpu = append(*cpu, float64(cpuTime()-c))
		return n
	}
	for b.Loop() {
		n := timed(text, &herd, &herdCPU)
		timed(prom, &herdProm, &herdPromCPU)
		// No b.StopTimer here: it reads the runtime's memory statistics, which stops the
		// world and flushes every P's allocation cache, and would slow down the next herd
		// round. ns/op is set from herd's rounds below anyway.
		wall, pcpu, pn := py.round(b)
		if pn < n*3/4 || pn > n*4/3 {
			b.Fatalf("exposition sizes differ too much: herd %d bytes, Python %d", n, pn)
		}
		pyt, pyCPU = append(pyt, float64(wall)), append(pyCPU, float64(pcpu))
	}
	h, hp, p := median(herd), median(herdProm), median(pyt)
	hc, hpc, pc := median(herdCPU), median(herdPromCPU), median(pyCPU)
	b.ReportMetric(h, "ns/op")
	b.ReportMetric(h/1e6, "herd-ms")
	b.ReportMetric(hp/1e6, "herd-prom-ms")
	b.ReportMetric(p/1e6, "python-ms")
	b.ReportMetric(p/h, "x-faster")
	b.ReportMetric(p/hp, "x-faster-prom")
	b.ReportMetric(hc/1e6, "herd-cpu-ms")
	b.ReportMetric(hpc/1e6, "herd-prom-cpu-ms")
	b.ReportMetric(pc/1e6, "python-cpu-ms")
	b.ReportMetric(pc/hc, "x-faster-cpu")
	b.ReportMetric(pc/hpc, "x-faster-prom-cpu")
}
