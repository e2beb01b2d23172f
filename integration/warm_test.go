package integration

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestMasterWarmsItsMetricsCache: once its workers are ready, the master does the first
// scrape's work (every worker file mapped and parsed) and logs it, so that Prometheus'
// first scrape of a new master (after a binary upgrade, of all the old workers' files)
// costs what any scrape costs.
func TestMasterWarmsItsMetricsCache(t *testing.T) {
	p := startHello(t, "-workers", "2")
	line := p.waitLine(t, 20*time.Second, "metrics cache warmed")
	m := regexp.MustCompile(`files=(\d+) entries=(\d+) took=`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("the warm-up line names no files and entries: %s", line)
	}
	// Each worker writes at least its live in-flight gauge file.
	if files, _ := strconv.Atoi(m[1]); files < 2 {
		t.Errorf("the warm-up read %d files, want those of both workers: %s", files, line)
	}
	if fams := p.scrape(); fams["http_requests_in_flight"] == nil {
		t.Errorf("the scrape after the warm-up has no http_requests_in_flight")
	}
}
