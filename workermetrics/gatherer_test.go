package workermetrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// value is one sample of the Gatherer (a scrape: it has effects).
func value(t *testing.T, g metrics.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	return metricstest.Value(t, g, name, labels...)
}

// scrape gathers once and returns the families by name.
func scrape(t *testing.T, g metrics.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*dto.MetricFamily{}
	for i, mf := range fams {
		if i > 0 && fams[i-1].GetName() >= mf.GetName() {
			t.Errorf("families out of order: %s after %s", mf.GetName(), fams[i-1].GetName())
		}
		m[mf.GetName()] = mf
	}
	return m
}

// sample returns the value of the series of mf with the given labels.
func sample(mf *dto.MetricFamily, labels ...string) (float64, bool) {
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) != len(labels)/2 {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams[name], labels...)
	if !ok {
		t.Fatalf("no %s%v in %v", name, labels, fams[name])
	}
	return v
}

func TestFreshSnapshotAtScrape(t *testing.T) {
	dir := t.TempDir()
	w := startChild(t, dir, "0a")
	w.do("inc 5") // after the first snapshot file: only a fresh answer has it
	g := NewGatherer(dir, nil, GathererOpts{})
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 5 {
		t.Errorf("jobs_total = %v, want 5", v)
	}
	if v := mustSample(t, fams, "queue", "worker", "0a"); v != float64(w.cmd.Process.Pid) {
		t.Errorf("queue{worker=0a} = %v, want the worker's pid %d", v, w.cmd.Process.Pid)
	}
	if v := mustSample(t, fams, workersName, "source", "fresh"); v != 1 {
		t.Errorf("%s{source=fresh} = %v, want 1", workersName, v)
	}
}

func TestKilledWorkerCountsUpToItsLastSnapshot(t *testing.T) {
	dir := t.TempDir()
	g := NewGatherer(dir, nil, GathererOpts{})
	a := startChild(t, dir, "0a")
	b := startChild(t, dir, "1a")
	a.do("inc 10")
	a.do("flush")
	a.do("inc 3") // never in a snapshot: lost when a is killed
	b.do("inc 100")
	a.kill()
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 110 {
		t.Errorf("jobs_total after the kill = %v, want 110 (a's last snapshot and b)", v)
	}
	if _, ok := sample(fams["queue"], "worker", "0a"); ok {
		t.Error("the dead worker's gauge is still served")
	}
	if v := mustSample(t, fams, foldedName); v != 1 {
		t.Errorf("%s = %v, want 1", foldedName, v)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "0a_*")); len(ents) != 0 {
		t.Errorf("the dead worker's files are left: %v", ents)
	}
	// Its replacement takes over the id; the counter goes on from the
	// total.
	r := startChild(t, dir, "0a")
	r.do("inc 4")
	fams = scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 114 {
		t.Errorf("jobs_total with the replacement = %v, want 114", v)
	}
	if v := mustSample(t, fams, "queue", "worker", "0a"); v != float64(r.cmd.Process.Pid) {
		t.Errorf("queue{worker=0a} = %v, want the replacement's pid %d", v, r.cmd.Process.Pid)
	}
	if n := len(fams["queue"].GetMetric()); n != 2 {
		t.Errorf("%d queue series, want one per live worker", n)
	}
}

// The master's last fresh answer from a worker is newer than the worker's
// file: a kill right after a scrape loses nothing the scrape saw, and the
// counter does not go back to the file's value.
func TestKilledWorkerNeverGoesBelowTheLastScrape(t *testing.T) {
	dir := t.TempDir()
	g := NewGatherer(dir, nil, GathererOpts{})
	a := startChild(t, dir, "0a")
	a.do("inc 10")
	if v := value(t, g, "jobs_total"); v != 10 {
		t.Fatalf("jobs_total = %v, want 10", v)
	}
	a.kill()
	if v := value(t, g, "jobs_total"); v != 10 {
		t.Errorf("jobs_total after the kill = %v, want 10 (the file holds 0)", v)
	}
}

func TestCleanCloseLosesNothing(t *testing.T) {
	dir := t.TempDir()
	g := NewGatherer(dir, nil, GathererOpts{})
	a := startChild(t, dir, "0a")
	a.do("inc 10") // no snapshot file has it until close
	a.do("close")
	a.wait()
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 10 {
		t.Errorf("jobs_total after a clean stop = %v, want 10", v)
	}
	if v := mustSample(t, fams, foldedName); v != 1 {
		t.Errorf("%s = %v, want 1", foldedName, v)
	}
}

func TestUnresponsiveWorkerIsServedFromItsFile(t *testing.T) {
	dir := t.TempDir()
	g := NewGatherer(dir, nil, GathererOpts{Timeout: 200 * time.Millisecond})
	a := startChild(t, dir, "0a")
	a.do("inc 7")
	a.do("flush")
	a.do("inc 1")
	a.do("block")
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 7 {
		t.Errorf("jobs_total = %v, want 7 (the file)", v)
	}
	if _, ok := sample(fams["queue"], "worker", "0a"); !ok {
		t.Error("a live worker that did not answer has no gauge")
	}
	if v := mustSample(t, fams, workersName, "source", "snapshot"); v != 1 {
		t.Errorf("%s{source=snapshot} = %v, want 1", workersName, v)
	}
	a.do("unblock")
	if v := value(t, g, "jobs_total"); v != 8 {
		t.Errorf("jobs_total once it answers = %v, want 8", v)
	}
}

func TestForeignAndCorruptFilesAreSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	a := startChild(t, dir, "0a")
	a.do("inc 2")
	// A foreign file, and the corrupt snapshot of a dead worker (no
	// socket).
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o600)
	os.WriteFile(filepath.Join(dir, "1a_999999_1.snap"), []byte("HERDWMS1garbage"), 0o600)
	g := NewGatherer(dir, nil, GathererOpts{})
	fams := scrape(t, g)
	if v := mustSample(t, fams, skippedName); v != 2 {
		t.Errorf("%s = %v, want 2", skippedName, v)
	}
	if v := mustSample(t, fams, "jobs_total"); v != 2 {
		t.Errorf("jobs_total = %v, want 2", v)
	}
	// The dead worker's file is removed once it has been dealt with.
	fams = scrape(t, g)
	if v := mustSample(t, fams, skippedName); v != 1 {
		t.Errorf("%s on the next scrape = %v, want 1 (the foreign file)", skippedName, v)
	}
}

// herd's own metric file reader only looks at *.db names: the export
// directory inside the run directory is neither merged nor counted as
// skipped.
func TestRunDirectoryScanIgnoresTheExportDirectory(t *testing.T) {
	run := t.TempDir()
	reg := metricstest.NewRegistryWith(t, metrics.Options{Dir: run, ID: "0a"})
	reg.MustNewCounter(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests."}).Inc()
	w := startChild(t, filepath.Join(run, "export"), "0a")
	w.do("flush")
	dg := metrics.NewDirGatherer(run, metrics.GathererOpts{})
	defer dg.Close()
	if v := value(t, dg, "herd_metrics_files_skipped"); v != 0 {
		t.Errorf("herd_metrics_files_skipped = %v, want 0", v)
	}
	g := NewGatherer(filepath.Join(run, "export"), dg, GathererOpts{})
	fams := scrape(t, g)
	if v := mustSample(t, fams, "http_requests_total"); v != 1 {
		t.Errorf("http_requests_total = %v, want 1", v)
	}
	if _, ok := fams["jobs_total"]; !ok {
		t.Error("no jobs_total from the worker")
	}
}

func TestLongDirectoryPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	w := startChild(t, dir, "0a")
	w.do("inc 3")
	if len(filepath.Join(dir, "0a_1234567_xxxxxxxxxxxx.sock")) <= maxSockPath {
		t.Fatal("the directory is not long enough for this test")
	}
	g := NewGatherer(dir, nil, GathererOpts{})
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 3 {
		t.Errorf("jobs_total = %v, want 3 (a fresh answer)", v)
	}
	if v := mustSample(t, fams, workersName, "source", "fresh"); v != 1 {
		t.Errorf("%s{source=fresh} = %v, want 1", workersName, v)
	}
	w.kill()
	if v := value(t, g, foldedName); v != 1 {
		t.Errorf("%s = %v: a dead worker behind a long path is not seen dead", foldedName, v)
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "export")
	startChild(t, dir, "0a")
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("files %v, want a snapshot and a socket", ents)
	}
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode())
		}
	}
}

// The wrapped gatherer's families are served as they are; a worker's family
// of the same name is dropped and counted.
func TestHerdFamiliesWin(t *testing.T) {
	dir := t.TempDir()
	w := startChild(t, dir, "0a")
	w.do("inc 5")
	herd := metricstest.NewRegistry(t)
	herd.MustNewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Herd's jobs."}).Add(1)
	g := NewGatherer(dir, herd, GathererOpts{})
	fams := scrape(t, g)
	if v := mustSample(t, fams, "jobs_total"); v != 1 {
		t.Errorf("jobs_total = %v, want herd's 1", v)
	}
	if v := mustSample(t, fams, droppedName, "reason", "herd_name"); v != 1 {
		t.Errorf("%s{reason=herd_name} = %v, want 1", droppedName, v)
	}
	if _, ok := sample(fams["queue"], "worker", "0a"); !ok {
		t.Error("the worker's other families are gone")
	}
}

func TestPublisherRejectsBadArguments(t *testing.T) {
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for name, f := range map[string]func() (*Publisher, error){
		"bad id":        func() (*Publisher, error) { return NewPublisher(t.TempDir(), "0_a", g, PublisherOpts{}) },
		"nil gatherer":  func() (*Publisher, error) { return NewPublisher(t.TempDir(), "0a", nil, PublisherOpts{}) },
		"dir is a file": func() (*Publisher, error) { return NewPublisher(file, "0a", g, PublisherOpts{}) },
		"parent not there": func() (*Publisher, error) {
			return NewPublisher(filepath.Join(file, "x", "y"), "0a", g, PublisherOpts{})
		},
	} {
		if p, err := f(); err == nil {
			p.Close()
			t.Errorf("%s: no error", name)
		}
	}
}
