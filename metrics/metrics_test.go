package metrics_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herdhttp/herd/metrics"
)

func newReg(t *testing.T, dir, id string) *metrics.Registry {
	t.Helper()
	r, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestQuickstart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var regs []*metrics.Registry
	for _, id := range []string{"0a", "1a"} {
		r := newReg(t, dir, id)
		regs = append(regs, r)
		c := r.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests."}, "method", "code")
		h := r.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat_seconds", Help: "Latency."}, "method")
		c.With("GET", "200").Inc()
		c.With("GET", "200").Add(2)
		h.With("GET").Observe(0.3)
	}
	var buf bytes.Buffer
	if err := metrics.WriteText(&buf, metrics.NewDirGatherer(dir, metrics.GathererOpts{OmitSelfMetrics: true})); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		`http_requests_total{code="200",method="GET"} 6`,
		`lat_seconds_bucket{method="GET",le="0.25"} 0`,
		`lat_seconds_bucket{method="GET",le="0.5"} 2`,
		`lat_seconds_bucket{method="GET",le="+Inf"} 2`,
		`lat_seconds_count{method="GET"} 2`,
		`herd_metrics_write_errors_total 0`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}

	srv := httptest.NewServer(metrics.Handler(regs[0], metrics.HandlerOpts{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	req.Header.Set("Accept-Encoding", "gzip")
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q", ce)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if !strings.HasSuffix(string(body), "# EOF\n") || !strings.Contains(string(body), `http_requests_total{code="200",method="GET"} 6`) {
		t.Fatalf("openmetrics body:\n%s", body)
	}
	t.Logf("%s: %s", resp.Header.Get("Content-Type"), body)
}
