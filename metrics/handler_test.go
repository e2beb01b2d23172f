package metrics_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

func TestHandlerNegotiation(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "hits_total", Help: "Hits."}, "code").With("200").Add(3)
	h := metrics.Handler(reg, metrics.HandlerOpts{})
	cases := []struct {
		accept   string
		wantType expfmt.FormatType
		wantCT   string
	}{
		{"", expfmt.TypeTextPlain, "text/plain; version=0.0.4; charset=utf-8"},
		{"text/plain", expfmt.TypeTextPlain, "text/plain; version=0.0.4"},
		{"*/*", expfmt.TypeTextPlain, "text/plain; version=0.0.4"}, // curl
		{"application/openmetrics-text; version=1.0.0", expfmt.TypeOpenMetrics, "application/openmetrics-text; version=1.0.0"},
		{"application/openmetrics-text", expfmt.TypeOpenMetrics, "application/openmetrics-text; version=0.0.1"},
		// What Prometheus sends.
		{"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
			expfmt.TypeOpenMetrics, "application/openmetrics-text; version=1.0.0"},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
			expfmt.TypeProtoDelim, "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"},
		{"image/png", expfmt.TypeTextPlain, "text/plain; version=0.0.4"},
	}
	for _, c := range cases {
		t.Run(c.accept, func(t *testing.T) {
			resp, body := scrape(t, h, c.accept)
			ct := resp.Header.Get("Content-Type")
			if !strings.HasPrefix(ct, c.wantCT) {
				t.Errorf("Content-Type %q, want %q", ct, c.wantCT)
			}
			format := expfmt.ResponseFormat(resp.Header)
			if format.FormatType() != c.wantType {
				t.Fatalf("format %v, want type %v", format, c.wantType)
			}
			if c.wantType == expfmt.TypeOpenMetrics {
				if !bytes.HasSuffix(body, []byte("# EOF\n")) {
					t.Errorf("no # EOF:\n%s", body)
				}
				if !bytes.Contains(body, []byte("hits_total{code=\"200\"} 3.0\n")) {
					t.Errorf("body:\n%s", body)
				}
				return
			}
			fams := decodeAll(t, bytes.NewReader(body), format)
			if err := metricstest.CompareText(static(fams), "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{code=\"200\"} 3\n", "hits_total"); err != nil {
				t.Error(err)
			}
			if c.wantType == expfmt.TypeTextPlain {
				if n := strings.Count(string(body), "# TYPE hits_total "); n != 1 {
					t.Errorf("TYPE lines for hits_total: %d", n)
				}
			}
		})
	}
}

func TestHandlerGzip(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	reg.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	for _, c := range []struct {
		encoding string
		opts     metrics.HandlerOpts
		gzipped  bool
	}{
		{"gzip", metrics.HandlerOpts{}, true},
		{"deflate, gzip;q=0.5", metrics.HandlerOpts{}, true},
		{"*", metrics.HandlerOpts{}, true},
		{"gzip;q=0", metrics.HandlerOpts{}, false},
		{"", metrics.HandlerOpts{}, false},
		{"gzip", metrics.HandlerOpts{DisableCompression: true}, false},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if c.encoding != "" {
			req.Header.Set("Accept-Encoding", c.encoding)
		}
		rec := httptest.NewRecorder()
		metrics.Handler(reg, c.opts).ServeHTTP(rec, req)
		got := rec.Header().Get("Content-Encoding") == "gzip"
		if got != c.gzipped {
			t.Errorf("Accept-Encoding %q %+v: gzipped %v", c.encoding, c.opts, got)
			continue
		}
		body := rec.Body.Bytes()
		if got {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Contains(body, []byte("\nc_total 1\n")) {
			t.Errorf("%q: body\n%s", c.encoding, body)
		}
		if v := rec.Header().Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("Vary %q", v)
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	one := gaugeFamilies("up", 1)
	failing := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return one, errors.New("boom") })
	rec := httptest.NewRecorder()
	metrics.Handler(failing, metrics.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("status %d body %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	metrics.Handler(failing, metrics.HandlerOpts{ContinueOnError: true}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "up 1") {
		t.Errorf("ContinueOnError: status %d body %q", rec.Code, rec.Body)
	}
	// A directory that does not exist is an error, not an empty scrape.
	rec = httptest.NewRecorder()
	metrics.Handler(metrics.NewDirGatherer(t.TempDir()+"/nope", metrics.GathererOpts{}), metrics.HandlerOpts{}).
		ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 {
		t.Errorf("missing dir: status %d", rec.Code)
	}
}

func gaugeFamilies(name string, v float64) []*dto.MetricFamily {
	help := "h"
	return []*dto.MetricFamily{{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}}
}

// The master's gatherer reports its own work and the files it skipped.
func TestDirGathererSelfMetrics(t *testing.T) {
	t.Parallel()
	w := metricstest.NewWorkers(t, 2)
	w[0].MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	dir := w[0].Dir()
	for name, content := range map[string]string{
		"counter_9a.db":    "",                 // zero length
		"gauge_bogus_1.db": "x",                // unknown mode
		"notes_1.db":       "hello",            // foreign
		"histogram_2a.db":  "\x40\x00\x00\x00", // truncated
	} {
		if err := writeFile(dir, name, content); err != nil {
			t.Fatal(err)
		}
	}
	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	if got := metricstest.Value(t, g, "herd_metrics_files_skipped"); got != 4 {
		t.Errorf("skipped = %v, want 4", got)
	}
	if got := metricstest.Value(t, g, "herd_metrics_files"); got != 2 {
		t.Errorf("files = %v, want 2 (one counter file per worker)", got)
	}
	if got := metricstest.Value(t, g, "herd_metrics_scrape_duration_seconds"); !(got > 0 && got < 10) {
		t.Errorf("scrape duration = %v", got)
	}
	if got := metricstest.Value(t, g, "c_total"); got != 1 {
		t.Errorf("c_total = %v", got)
	}
}

func writeFile(dir, name, content string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
}
