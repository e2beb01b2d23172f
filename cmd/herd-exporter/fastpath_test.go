package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
)

// TestScrapesRenderTheMergedFiles: the exporter's text and OpenMetrics scrapes are
// rendered by metrics.Handler straight from the merged files (its gatherer is a Renderer
// beside its DirGatherer, as the master's /metrics is), and the bodies are those of
// encoding what Gather returns, herd_exporter_files_skipped included. A family of the
// files named like the exporter's own is left out and counted, never served twice.
func TestScrapesRenderTheMergedFiles(t *testing.T) {
	dir := t.TempDir()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}, "queue").With("mail").Add(3)
	reg.MustNewGauge(metrics.GaugeOpts{Name: skippedName, Help: "Forged.", Mode: metrics.GaugeMax}).Set(42)
	if err := reg.Unmap(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "counter_9.db"), nil, 0o600); err != nil { // skipped: empty
		t.Fatal(err)
	}
	g := newGatherer(testConfig(t, dir), discardLogger())
	defer g.Close()
	var r metrics.Renderer = g
	if r.Beside() != metrics.Gatherer(g.files) {
		t.Fatal("the gatherer's Beside is not its DirGatherer: scrapes would go through Gather")
	}
	h := newHandler(testConfig(t, dir), discardLogger())
	// The scrape duration differs between any two scrapes.
	duration := regexp.MustCompile(`(?m)^herd_metrics_scrape_duration_seconds .*$`)
	for _, format := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0} {
		body, _ := get(t, h, "/metrics", string(format))
		fams, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := expfmt.NewEncoder(&want, format)
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			c.Close()
		}
		got, exp := duration.ReplaceAllString(body, "D"), duration.ReplaceAllString(want.String(), "D")
		if got != exp {
			t.Errorf("%s: the scrape differs from encoding Gather's families:\n--- scrape\n%s\n--- Gather\n%s", format, got, exp)
		}
		flat := flatten(t, body)
		for key, want := range map[string]float64{
			`jobs_total{queue="mail"}`:                    3,
			`herd_exporter_files_skipped{reason="empty"}`: 1,
			"herd_metrics_families_dropped{}":             1,
		} {
			if v := flat[key].value; v != want {
				t.Errorf("%s: %s = %v, want %v", format, key, v, want)
			}
		}
	}
}
