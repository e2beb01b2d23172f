package metrics_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// pythonGolden is the directory of files and expositions written by the real client_python.
const pythonGolden = "../testdata/client_python"

// decodeAll decodes a whole exposition in the given format.
func decodeAll(t *testing.T, r io.Reader, format expfmt.Format) []*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(r, format)
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode %s: %v", format, err)
		}
		out = append(out, mf)
	}
}

func scrape(t *testing.T, h http.Handler, accept string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, rec.Body.Bytes())
	}
	return resp, rec.Body.Bytes()
}

const acceptOpenMetrics = "application/openmetrics-text; version=1.0.0"

// herd's merge of client_python's own files equals client_python's own merge, by value, in
// both text formats, before and after a process died.
func TestGoldenClientPython(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ dir, prom, om string }{
		{"mpdir", "merged.prom", "merged.openmetrics"},
		{"mpdir-after-123-died", "merged-after-123-died.prom", "merged-after-123-died.openmetrics"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			t.Parallel()
			g := metrics.NewDirGatherer(filepath.Join(pythonGolden, c.dir), metrics.GathererOpts{OmitSelfMetrics: true})
			prom, err := os.ReadFile(filepath.Join(pythonGolden, c.prom))
			if err != nil {
				t.Fatal(err)
			}
			if err := metricstest.CompareText(g, string(prom)); err != nil {
				t.Errorf("text 0.0.4: %v", err)
			}

			om, err := os.ReadFile(filepath.Join(pythonGolden, c.om))
			if err != nil {
				t.Fatal(err)
			}
			_, body := scrape(t, metrics.Handler(g, metrics.HandlerOpts{}), acceptOpenMetrics)
			if !bytes.HasSuffix(body, []byte("# EOF\n")) {
				t.Errorf("OpenMetrics output does not end in # EOF")
			}
			compareOpenMetrics(t, om, body)
		})
	}
}

// compareOpenMetrics compares two OpenMetrics texts line by line: the same comment lines
// (HELP, TYPE, EOF) and the same samples by value, in any order. (expfmt's OpenMetrics
// parser would do, but is far too slow for a unit test.)
func compareOpenMetrics(t *testing.T, want, got []byte) {
	t.Helper()
	w, g := omLines(t, want), omLines(t, got)
	for k, v := range w {
		if gv, ok := g[k]; !ok {
			t.Errorf("OpenMetrics: missing %s", k)
		} else if gv != v {
			t.Errorf("OpenMetrics: %s = %v, want %v", k, gv, v)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("OpenMetrics: unexpected %s", k)
		}
	}
}

func omLines(t *testing.T, text []byte) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for _, line := range strings.Split(strings.TrimSuffix(string(text), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			out[line] = 0
			continue
		}
		key, value, err := parseSampleLine(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[key] = value
	}
	return out
}

// parseSampleLine parses `name{l="v",...} value` into a key with labels sorted (le as a
// number) and the value.
func parseSampleLine(line string) (string, float64, error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", 0, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	var labels []string
	if rest[0] == '{' {
		rest = rest[1:]
		for rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			ln := rest[:eq]
			rest = rest[eq+2:] // past ="
			var v strings.Builder
			for rest[0] != '"' {
				if rest[0] == '\\' {
					switch rest[1] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(rest[1])
					}
					rest = rest[2:]
					continue
				}
				v.WriteByte(rest[0])
				rest = rest[1:]
			}
			val := v.String()
			if ln == "le" {
				f, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return "", 0, err
				}
				val = strconv.FormatFloat(f, 'g', -1, 64)
			}
			labels = append(labels, fmt.Sprintf("%s=%q", ln, val))
			rest = strings.TrimPrefix(rest[1:], ",")
		}
		rest = rest[1:]
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return "", 0, err
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}", f, nil
}

func static(fams []*dto.MetricFamily) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })
}

// workersScenario writes, through two simulated workers, one of everything: labels that need
// escaping and non-ASCII, custom buckets, a summary, a gauge in every mode.
func workersScenario(t *testing.T) (dir string, w0, w1 *metrics.Registry) {
	dir = t.TempDir()
	clock := fakeClock()
	w0 = metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "0a", Now: clock})
	w1 = metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "1a", Now: clock})
	for i, w := range []*metrics.Registry{w0, w1} {
		f := float64(i + 1)
		req := w.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests served.",
			ConstLabels: map[string]string{"app": "hello"}}, "method", "route", "code")
		req.With("GET", "/hello", "200").Add(10 * f)
		req.With("GET", "/users/{id}", "200").Inc()
		req.With("POST", "/café \"q\" \\ <a&b>\n", "500").Add(f)
		req.With("GET", "/emoji/😀", "404").Add(0.5)
		lin, _ := metrics.LinearBuckets(0.1, 0.1, 3)
		lat := w.MustNewHistogramVec(metrics.HistogramOpts{Name: "http_request_duration_seconds", Help: "Latency.", Buckets: lin}, "route")
		for _, v := range []float64{0.05, 0.1, 0.15, 0.3, 7} {
			lat.With("/hello").Observe(v * f)
		}
		w.MustNewSummary(metrics.SummaryOpts{Name: "payload_bytes", Help: "Payload sizes."}).Observe(100 * f)
		for _, mode := range metrics.GaugeModes() {
			w.MustNewGaugeVec(metrics.GaugeOpts{Name: "g_" + string(mode), Help: "Gauge in mode " + string(mode) + ".", Mode: mode}, "kind").
				With("x").Set(f)
		}
	}
	return dir, w0, w1
}

// The exposition of the scenario, byte for byte, in text and OpenMetrics, alive and after
// worker 0a died: stable sorted output, HELP and TYPE once per family.
func TestGoldenExposition(t *testing.T) {
	t.Parallel()
	dir, w0, _ := workersScenario(t)
	h := metrics.Handler(metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true}), metrics.HandlerOpts{})
	check := func(stage string) {
		for _, f := range []struct{ ext, accept string }{{"prom", ""}, {"openmetrics", acceptOpenMetrics}} {
			_, body := scrape(t, h, f.accept)
			_, again := scrape(t, h, f.accept)
			if !bytes.Equal(body, again) {
				t.Errorf("%s %s: two scrapes differ", stage, f.ext)
			}
			golden(t, filepath.Join("testdata", "workers-"+stage+"."+f.ext), body)
		}
	}
	check("alive")
	metricstest.Kill(t, w0)
	check("after-0a-died")
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s", path, got)
	}
}
