package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/internal/testutil"
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

// TestBinaryWarmsItsCacheWhenItStarts: the exporter does the first scrape's work when it
// starts (logging the files and entries it read), so that the first scrape parses nothing;
// a directory that is unsafe to read is not read then either.
func TestBinaryWarmsItsCacheWhenItStarts(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"1", "2"} {
		reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}, "queue")
		for q := range 50 {
			v.With(fmt.Sprint("q", q)).Inc()
		}
		if err := reg.Unmap(); err != nil {
			t.Fatal(err)
		}
	}
	e := startExporter(t, nil, "-dir", dir, "-bind", "127.0.0.1:0")
	warmed := regexp.MustCompile(`msg="metrics cache warmed" files=2 entries=(\d+) took=`)
	testutil.EventuallyTrue(t, 10*time.Second, "the log line of the warmed cache", func() bool {
		m := warmed.FindStringSubmatch(e.log.String())
		return m != nil && m[1] != "0"
	})
	if v := e.scrape(t)[`jobs_total{queue="q7"}`].value; v != 2 {
		t.Errorf(`jobs_total{queue="q7"} = %v, want 2`, v)
	}

}

// TestWarmReadsNoUnsafeDirectory: a directory that became unsafe (here world-writable)
// after the exporter started is not read by the warm-up either.
func TestWarmReadsNoUnsafeDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	reg.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs."}).Inc()
	if err := reg.Unmap(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	g := newGatherer(testConfig(t, dir), slog.New(slog.NewTextHandler(&logs, nil)))
	defer g.Close()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	g.warm()
	if st := g.reader.Stats(); st.Files != 0 || st.ParsedEntries != 0 {
		t.Errorf("the warm-up read the world-writable directory: %+v", st)
	}
	if !strings.Contains(logs.String(), "metrics cache not warmed: refusing to read the directory") {
		t.Errorf("no log line says why the cache was not warmed:\n%s", logs.String())
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.warm()
	if st := g.reader.Stats(); st.Files != 1 || st.ParsedEntries == 0 {
		t.Errorf("the warm-up of the safe directory read %+v, want its file", st)
	}
}
