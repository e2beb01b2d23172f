package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// goldenDir holds files written by the real client_python (current layout)
// and what its MultiProcessCollector serves for them. It lives in the
// shared/ directory beside the repository.
const goldenDir = "../../testdata/client_python"

// python is Debian's interpreter, which has python3-prometheus-client 0.16
// (the legacy 8-byte layout); a python3 earlier in PATH may lack the module.
const python = "/usr/bin/python3"

// exporterBin is the command built by TestMain.
var exporterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herd-exporter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "herd-exporter")
	build := exec.Command("go", "build", "-o", exporterBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building herd-exporter:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sample is one flattened sample of an exposition: its family's type and
// help, and its value.
type sample struct {
	typ, help string
	value     float64
}

// flatten turns an exposition into name{sorted labels} -> sample. Bucket
// bounds are normalised through float parsing ("1.0" and "1" are one
// bucket), so Python's and Go's spellings compare equal.
func flatten(t *testing.T, text string) map[string]sample {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	out := map[string]sample{}
	for name, mf := range mfs {
		typ, help := strings.ToLower(mf.GetType().String()), mf.GetHelp()
		add := func(sname string, labels []*dto.LabelPair, extra map[string]string, v float64) {
			ls := map[string]string{}
			for _, l := range labels {
				ls[l.GetName()] = l.GetValue()
			}
			for k, v := range extra {
				ls[k] = v
			}
			keys := make([]string, 0, len(ls))
			for k := range ls {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			b.WriteString(sname + "{")
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", k, ls[k])
			}
			b.WriteByte('}')
			key := b.String()
			if _, dup := out[key]; dup {
				t.Errorf("sample %s appears twice", key)
			}
			out[key] = sample{typ, help, v}
		}
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m.GetLabel(), nil, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetLabel(), nil, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m.GetLabel(), nil, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				add(name+"_count", m.GetLabel(), nil, float64(s.GetSampleCount()))
				add(name+"_sum", m.GetLabel(), nil, s.GetSampleSum())
				for _, q := range s.GetQuantile() {
					add(name, m.GetLabel(), map[string]string{"quantile": fmt.Sprint(q.GetQuantile())}, q.GetValue())
				}
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				add(name+"_count", m.GetLabel(), nil, float64(h.GetSampleCount()))
				add(name+"_sum", m.GetLabel(), nil, h.GetSampleSum())
				inf := false
				for _, b := range h.GetBucket() {
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
					add(name+"_bucket", m.GetLabel(), map[string]string{"le": fmt.Sprint(b.GetUpperBound())}, float64(b.GetCumulativeCount()))
				}
				if !inf { // implied by _count
					add(name+"_bucket", m.GetLabel(), map[string]string{"le": "+Inf"}, float64(h.GetSampleCount()))
				}
			default:
				t.Fatalf("family %s has unexpected type %v", name, mf.GetType())
			}
		}
	}
	return out
}

// isSelf: the exporter's own gauges, absent from Python's output.
func isSelf(key string) bool {
	return strings.HasPrefix(key, "herd_metrics_") || strings.HasPrefix(key, "herd_exporter_")
}

// compareByValue fails for every sample that differs between Python's
// collector (want) and the exporter (got), ignoring the exporter's own
// families. Sums may differ in the last bits (Python and herd add the files
// in different orders).
func compareByValue(t *testing.T, want, got map[string]sample) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s (Python: %v)", k, w.value)
		case g.typ != w.typ || g.help != w.help:
			t.Errorf("%s: type %s help %q, Python: type %s help %q", k, g.typ, g.help, w.typ, w.help)
		case !closeEnough(g.value, w.value):
			t.Errorf("%s = %v, Python: %v", k, g.value, w.value)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && !isSelf(k) {
			t.Errorf("extra sample %s = %v, not in Python's output", k, g.value)
		}
	}
}

func closeEnough(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

// get fetches path from h with an Accept header, failing on a non-200.
func get(t *testing.T, h http.Handler, path, accept string) (string, http.Header) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
	}
	return rec.Body.String(), rec.Header()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is the configuration of the command line "-dir dir args...".
func testConfig(t *testing.T, dir string, args ...string) config {
	t.Helper()
	c, err := parseFlags(append([]string{"-dir", dir}, args...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGoldenClientPython serves the golden directories written by the newest
// client_python and compares with its own MultiProcessCollector's output.
func TestGoldenClientPython(t *testing.T) {
	for _, tc := range []struct{ dir, prom string }{
		{"mpdir", "merged.prom"},
		{"mpdir-after-123-died", "merged-after-123-died.prom"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join(goldenDir, tc.dir)
			wantText, err := os.ReadFile(filepath.Join(goldenDir, tc.prom))
			if err != nil {
				t.Fatalf("golden files missing (shared/ must sit beside the repository): %v", err)
			}
			h := newHandler(testConfig(t, dir), discardLogger())
			got, hdr := get(t, h, "/metrics", "")
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("Content-Type %q, want text 0.0.4", ct)
			}
			gotS := flatten(t, got)
			compareByValue(t, flatten(t, string(wantText)), gotS)
			entries, _ := os.ReadDir(dir)
			if v := gotS["herd_metrics_files{}"].value; v != float64(len(entries)) {
				t.Errorf("herd_metrics_files = %v, want %d", v, len(entries))
			}
			if v := gotS["herd_metrics_files_skipped{}"].value; v != 0 {
				t.Errorf("herd_metrics_files_skipped = %v, want 0", v)
			}

			om, hdr := get(t, h, "/metrics", "application/openmetrics-text; version=1.0.0")
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
				t.Errorf("OpenMetrics Content-Type %q", ct)
			}
			if !strings.HasSuffix(om, "# EOF\n") {
				t.Errorf("OpenMetrics output does not end in # EOF")
			}
		})
	}
}

// mpDir runs testdata/mp.py against a multiprocess directory.
type mpDir struct {
	t   *testing.T
	dir string
}

func (m mpDir) py(args ...string) string {
	m.t.Helper()
	cmd := exec.Command(python, append([]string{"testdata/mp.py"}, args...)...)
	cmd.Env = append(os.Environ(), "PROMETHEUS_MULTIPROC_DIR="+m.dir)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		m.t.Fatalf("%s mp.py %v: %v\n%s\n(the tests need Debian's python3-prometheus-client: make deps)", python, args, err, stderr)
	}
	return string(out)
}

// TestPythonLegacyLayoutMatchesPythonsCollector has Debian's
// prometheus_client 0.16 (8-byte entries) write a directory from separate
// processes, and checks the exporter against Python's own collector after
// every step, through one handler so that incremental reads are exercised:
// two processes, one process dead (its live gauges removed), a third
// process appearing, and the files growing.
func TestPythonLegacyLayoutMatchesPythonsCollector(t *testing.T) {
	mp := mpDir{t, t.TempDir()}
	h := newHandler(testConfig(t, mp.dir), discardLogger())
	check := func(step string) {
		t.Helper()
		want := flatten(t, mp.py("collect"))
		body, _ := get(t, h, "/metrics", "")
		got := flatten(t, body)
		if len(want) < 10 {
			t.Fatalf("%s: Python's collector served only %d samples", step, len(want))
		}
		compareByValue(t, want, got)
		if v := got["herd_metrics_files_skipped{}"].value; v != 0 {
			t.Errorf("%s: herd_metrics_files_skipped = %v, want 0", step, v)
		}
		if t.Failed() {
			t.Fatalf("after %s: the exporter differs from Python's collector", step)
		}
	}

	pidA := strings.TrimSpace(mp.py("write", "a"))
	check("process a")
	mp.py("write", "b")
	check("processes a and b")
	if fi, err := os.Stat(filepath.Join(mp.dir, "counter_"+pidA+".db")); err != nil || fi.Size() <= 64<<10 {
		t.Errorf("counter file of a did not grow past 64 KiB: %v %v", fi, err)
	}
	mp.py("dead", pidA)
	if _, err := os.Stat(filepath.Join(mp.dir, "gauge_livesum_"+pidA+".db")); err == nil {
		t.Fatal("mark_process_dead left the livesum file")
	}
	check("a marked dead")
	mp.py("write", "c")
	check("process c appeared")
}

// TestBadFilesAreSkippedNotFatal adds files that break Python's collector
// and checks that the exporter serves everything else, counts the skipped
// files and logs each one.
func TestBadFilesAreSkippedNotFatal(t *testing.T) {
	mp := mpDir{t, t.TempDir()}
	mp.py("write", "a")
	mp.py("write", "b")
	want := flatten(t, mp.py("collect"))

	good, err := os.ReadFile(filepath.Join(goldenDir, "mpdir", "counter_123.db"))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"counter_999.db":   nil,                                // zero length: Python's mmap fails
		"histogram_998.db": good[:40],                          // truncated below its used offset
		"junk.db":          []byte("not a metric file at all"), // unknown prefix (client_python #878)
	}
	for name, b := range bad {
		if err := os.WriteFile(filepath.Join(mp.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&logBuf, nil)) // written by this goroutine only
	h := newHandler(testConfig(t, mp.dir), log)
	body, _ := get(t, h, "/metrics", "")
	got := flatten(t, body)
	compareByValue(t, want, got)
	if v := got["herd_metrics_files_skipped{}"].value; v != float64(len(bad)) {
		t.Errorf("herd_metrics_files_skipped = %v, want %d", v, len(bad))
	}
	for name := range bad {
		if !strings.Contains(logBuf.String(), name) {
			t.Errorf("no log line names the skipped file %s:\n%s", name, logBuf.String())
		}
	}
	cmd := exec.Command(python, "testdata/mp.py", "collect")
	cmd.Env = append(os.Environ(), "PROMETHEUS_MULTIPROC_DIR="+mp.dir)
	if err := cmd.Run(); err != nil {
		t.Logf("for comparison, Python's own collector fails on this directory: %v", err)
	}
}

func TestHealthz(t *testing.T) {
	dir := t.TempDir()
	h := newHandler(testConfig(t, dir), discardLogger())
	if body, _ := get(t, h, "/healthz", ""); body != "ok\n" {
		t.Errorf("/healthz = %q", body)
	}
	os.Remove(dir)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with the directory gone: %d, want 503", rec.Code)
	}
}

// exporter is a running herd-exporter binary.
type exporter struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	log  lockedBuffer // its standard error
}

// lockedBuffer is a strings.Builder for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.WriteString(string(p))
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bindRE finds the listen address in the start line, text or JSON.
var bindRE = regexp.MustCompile(`"?bind"?[=:]"?([^\s"]+)`)

func startExporter(t *testing.T, env []string, args ...string) *exporter {
	t.Helper()
	cmd := exec.Command(exporterBin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exporter{cmd: cmd, done: make(chan struct{})}
	started := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			e.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "herd-exporter started") {
				select {
				case started <- sc.Text():
				default:
				}
			}
		}
	}()
	go func() {
		<-logDone
		cmd.Wait()
		close(e.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-e.done
	})
	select {
	case line := <-started:
		e.addr = bindRE.FindStringSubmatch(line)[1]
	case <-e.done:
		t.Fatalf("herd-exporter exited before serving:\n%s", e.log.String())
	case <-time.After(10 * time.Second):
		t.Fatal("herd-exporter did not start in 10 s")
	}
	return e
}

// TestBinaryServesAndStops runs the command with its directory from
// PROMETHEUS_MULTIPROC_DIR, scrapes it over loopback and stops it.
func TestBinaryServesAndStops(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join(goldenDir, "mpdir"))
	if err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, []string{"PROMETHEUS_MULTIPROC_DIR=" + dir}, "-bind", "127.0.0.1:0", "-log-format", "json")
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `http_requests_total{code="200",method="GET",route="/hello"} 30`) {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	resp, err = http.Get("http://" + e.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %s", resp.Status)
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatal("herd-exporter did not stop within 10 s of SIGTERM")
	}
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestFlagErrors: every bad command line is one line on stderr and exit
// status 2, with nothing served.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name string
		env  []string
		args []string
		want string // in the one line
	}{
		{"no dir", nil, []string{"-bind", "127.0.0.1:0"}, "-dir is required"},
		{"missing dir", nil, []string{"-dir", filepath.Join(dir, "nope")}, "no such file or directory"},
		{"dir is a file", nil, []string{"-dir", file}, "is not a directory"},
		{"env dir missing", []string{"PROMETHEUS_MULTIPROC_DIR=" + filepath.Join(dir, "gone")}, nil, "-dir: "},
		{"bad bind", nil, []string{"-dir", dir, "-bind", "nonsense"}, "-bind: "},
		{"bad port", nil, []string{"-dir", dir, "-bind", "127.0.0.1:99999"}, "-bind: "},
		{"port in use", nil, []string{"-dir", dir, "-bind", busy.Addr().String()}, "address already in use"},
		{"unknown flag", nil, []string{"-dir", dir, "-workers", "2"}, "flag provided but not defined: -workers"},
		{"extra argument", nil, []string{"-dir", dir, "extra"}, `unexpected argument "extra"`},
		{"bad log format", nil, []string{"-dir", dir, "-log-format", "xml"}, "-log-format"},
		{"no files", nil, []string{"-dir", dir, "-max-files", "0"}, "-max-files: must be at least 1, got 0"},
		{"negative bytes", nil, []string{"-dir", dir, "-max-file-bytes", "-1"}, "-max-file-bytes: must be at least 1"},
		{"no series", nil, []string{"-dir", dir, "-max-series", "0"}, "-max-series: must be at least 1"},
		{"no connections", nil, []string{"-dir", dir, "-max-connections", "0"}, "-max-connections: must be at least 1"},
		{"bad idle timeout", nil, []string{"-dir", dir, "-idle-timeout", "soon"}, "-idle-timeout"},
		{"zero idle timeout", nil, []string{"-dir", dir, "-idle-timeout", "0s"}, "-idle-timeout: must be positive"},
		{"unknown owner", nil, []string{"-dir", dir, "-files-owner", "no-such-user-here"}, `-files-owner: no user "no-such-user-here"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exporterBin, tt.args...)
			cmd.Env = tt.env
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err == nil {
				code = 0
			}
			if code != 2 {
				t.Errorf("exit status %d (%v), want 2", code, err)
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "herd-exporter: ") || !strings.Contains(out, tt.want) {
				t.Errorf("stderr %q: want one line \"herd-exporter: ...%s...\"", out, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	out, err := exec.Command(exporterBin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, f := range []string{"-dir", "-bind", "-log-format", "PROMETHEUS_MULTIPROC_DIR", "-files-owner",
		"-max-files", "-max-file-bytes", "-max-series", "-max-connections", "-idle-timeout"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("-h does not mention %s:\n%s", f, out)
		}
	}
}

// TestRunInProcess covers run's own lifecycle without a binary: it serves
// until its context ends, then returns 0.
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-bind", "127.0.0.1:0"}, func(k string) string {
			if k == "prometheus_multiproc_dir" { // the older spelling still works
				return filepath.Join(goldenDir, "mpdir")
			}
			return ""
		}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("no log line")
	}
	m := bindRE.FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("first log line has no bind=: %q", sc.Text())
	}
	go io.Copy(io.Discard, pr)
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/metrics: %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run returned %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
