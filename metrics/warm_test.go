package metrics_test

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/mmapstore"
)

// Warm does a first scrape's work: the scrape after it parses no entry and decodes no key,
// and its body is that of a first scrape without it.
func TestWarmDoesTheFirstScrapesWork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeWorkers(t, dir, mmapstore.Legacy, laneIDs(4, "a"), 500)
	r := mmapstore.NewReader()
	warm := metrics.NewDirGatherer(dir, metrics.GathererOpts{Reader: r})
	defer warm.Close()
	if err := warm.Warm(); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()
	if before.ParsedEntries < 4*500 || before.DecodedKeys < 500 {
		t.Fatalf("after Warm: %+v, want the 4 x 500 entries parsed and their 500 keys decoded", before)
	}
	cold := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer cold.Close()
	duration := regexp.MustCompile(`(?m)^herd_metrics_scrape_duration_seconds .*$`)
	for _, accept := range []string{acceptText, acceptPrometheus} {
		body := func(g metrics.Gatherer) string {
			w := &bufferWriter{h: http.Header{}}
			serve(t, metrics.Handler(g, metrics.HandlerOpts{DisableCompression: true}), w, newScrapeRequest(accept, false))
			return duration.ReplaceAllString(w.body.String(), "D")
		}
		if got, want := body(warm), body(cold); got != want {
			t.Errorf("%s: after Warm the scrape differs from a first scrape:\n%s\n---\n%s", accept, got, want)
		}
		if after := r.Stats(); after.ParsedEntries != before.ParsedEntries || after.DecodedKeys != before.DecodedKeys {
			t.Errorf("%s: the scrape after Warm parsed or decoded again: %+v, then %+v", accept, before, after)
		}
	}
	gone := metrics.NewDirGatherer(dir+"/missing", metrics.GathererOpts{})
	if err := gone.Warm(); err == nil {
		t.Error("Warm of a missing directory: no error")
	}
}

// A server warms its gatherer when it starts, so that Prometheus' first scrape finds the
// files parsed and the series made.
func ExampleDirGatherer_Warm() {
	dir, err := os.MkdirTemp("", "herd-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	w, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "0a"})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	w.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs done."}).Add(3)

	g := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer g.Close()
	warmed := make(chan error, 1)
	go func() { warmed <- g.Warm() }()
	// ... start serving Handler(g, ...) meanwhile: a scrape during Warm waits for it.
	fmt.Println("warmed:", <-warmed)
	// Output:
	// warmed: <nil>
}
