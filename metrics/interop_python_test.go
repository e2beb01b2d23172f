package metrics_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/mmapstore"
)

// Interop with the real client_python: Debian's python3-prometheus-client (0.16, the legacy
// file layout), run with /usr/bin/python3. These tests fail, never skip, when it is missing:
// `make test` installs it.

const python = "/usr/bin/python3"

func requirePython(t testing.TB) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import prometheus_client").CombinedOutput()
	if err != nil {
		t.Fatalf("%s with prometheus_client is required (apt-get install python3-prometheus-client; make test does): %v\n%s", python, err, out)
	}
}

// runPython runs a script of testdata/python with PROMETHEUS_MULTIPROC_DIR=dir and a clean
// environment, and returns its standard output.
func runPython(t testing.TB, dir, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", "python", script)}, args...)...)
	cmd.Env = []string{"PROMETHEUS_MULTIPROC_DIR=" + dir, "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, args, err, stderr.Bytes())
	}
	return stdout.String()
}

// Several Python processes write every metric type, every gauge mode Python supports and
// non-ASCII labels; herd's DirGatherer must serve the values Python's MultiProcessCollector
// serves for the same directory, alive and after processes died (removed once by herd's
// RemoveLiveFiles, once by Python's mark_process_dead).
func TestPythonWritesHerdReads(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := t.TempDir()
	const procs = 3
	pids := make([]string, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(python, filepath.Join("testdata", "python", "write.py"), strconv.Itoa(i))
			cmd.Env = []string{"PROMETHEUS_MULTIPROC_DIR=" + dir, "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1"}
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("write.py %d: %v", i, err) // not Fatal: this is not the test goroutine
				return
			}
			pids[i] = strings.TrimSpace(string(out))
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true})
	compare := func(stage string, dead ...string) {
		t.Helper()
		want := runPython(t, dir, "collect.py", dead...)
		if !strings.Contains(want, "g_livesum") || !strings.Contains(want, "кот") {
			t.Fatalf("%s: unexpected Python output:\n%s", stage, want)
		}
		if err := metricstest.CompareText(g, want); err != nil {
			t.Errorf("%s: %v", stage, err)
		}
	}
	compare("alive")
	if err := metrics.RemoveLiveFiles(dir, pids[0]); err != nil {
		t.Fatal(err)
	}
	compare("after herd removed " + pids[0])
	compare("after Python marked "+pids[1]+" dead", pids[1])
}

// Legacy files written by herd's simulated workers are read by Python's collector with the
// values herd's own merge gives, alive and after a worker died.
func TestHerdWritesPythonReads(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := t.TempDir()
	var workers []*metrics.Registry
	for i := range 3 {
		w := metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: fmt.Sprintf("%da", i), Layout: mmapstore.Legacy})
		workers = append(workers, w)
		f := float64(i + 1)
		req := w.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served.",
			ConstLabels: map[string]string{"app": "hello"}}, "method", "route", "code")
		req.With("GET", "/hello", "200").Add(10 * f)
		req.With("POST", "/café \"q\" \\ <a&b>\n", "500").Add(f + 0.5)
		req.With("GET", "/emoji/😀", "404").Inc()
		for _, mode := range metrics.GaugeModes() {
			if mode == metrics.GaugeMostRecent || mode == metrics.GaugeLiveMostRecent {
				continue // needs timestamps: not in the legacy layout
			}
			v := w.MustNewGaugeVec(metrics.GaugeOpts{Name: "g_" + string(mode), Help: "Gauge in mode " + string(mode) + ".", Mode: mode}, "kind")
			v.With("x").Set(f)
			v.With("кот").Set(10 - f)
		}
		inflight := w.MustNewGauge(metrics.GaugeOpts{Name: "inflight", Help: "In flight.", Mode: metrics.GaugeLiveSum})
		inflight.Add(3)
		inflight.Dec()
		lat := w.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat_seconds", Help: "Latency."}, "route")
		for _, v := range []float64{0.003, 0.07, 0.3, 2, 20} {
			lat.With("/hello").Observe(v * f)
		}
		sizes := w.MustNewHistogram(metrics.HistogramOpts{Name: "size_bytes", Help: "Sizes.", Buckets: []float64{100, 1000, 1e4, 1234567, 1e10}})
		sizes.Observe(500 * f)
		sizes.Observe(2e9)
		w.MustNewSummaryVec(metrics.SummaryOpts{Name: "payload_bytes", Help: "Payload sizes."}, "route").With("/hello").Observe(100 * f)
	}
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true})
	compare := func(stage string, dead ...string) {
		t.Helper()
		got := runPython(t, dir, "collect.py", dead...)
		if !strings.Contains(got, "http_requests_total") {
			t.Fatalf("%s: unexpected Python output:\n%s", stage, got)
		}
		if err := metricstest.CompareText(g, got); err != nil {
			t.Errorf("%s: Python's view differs from herd's: %v", stage, err)
		}
	}
	compare("alive")
	metricstest.Kill(t, workers[0])
	compare("after 0a died")
	compare("after Python marked 1a dead", "1a")
}

// herd writes the "le" label exactly as Python's floatToGoString does.
func TestPyFloatMatchesPython(t *testing.T) {
	t.Parallel()
	requirePython(t)
	values := []float64{0.005, 0.01, 0.1, 0.25, 1, 2.5, 10, 100, 1e4, 123456, 1234567, 1e7, 1e10, 1.5e15, 1e16,
		1e22, 1e-4, 1e-5, 0.00012345, 3.14159, -1, -2.5e-7, 0, 99999.5, 1e300, 5e-324}
	args := make([]string, len(values))
	for i, v := range values {
		args[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	want := strings.Split(strings.TrimSpace(runPython(t, t.TempDir(), "floats.py", args...)), "\n")
	if len(want) != len(values) {
		t.Fatalf("python printed %d lines for %d values", len(want), len(values))
	}
	for i, v := range values {
		if got := metrics.PyFloat(v); got != want[i] {
			t.Errorf("%v: herd %q, Python %q", v, got, want[i])
		}
	}
}
