package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// Gatherer is anything that returns metric families: the shape of client_golang's
// prometheus.Gatherer, so values of either package satisfy both interfaces.
type Gatherer interface {
	Gather() ([]*dto.MetricFamily, error)
}

// GathererFunc turns a function into a Gatherer.
type GathererFunc func() ([]*dto.MetricFamily, error)

// Gather calls f.
func (f GathererFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

// GathererOpts configures a DirGatherer. The zero value works.
type GathererOpts struct {
	// Logger receives a warning the first time a file is skipped (for each path and reason).
	// Zero: skips are only counted.
	Logger *slog.Logger
	// OmitSelfMetrics leaves out the gatherer's own families (herd_metrics_files,
	// herd_metrics_files_skipped, herd_metrics_scrape_duration_seconds,
	// herd_metrics_families_dropped). Zero: included. Families of the files named like one
	// of them are left out either way.
	OmitSelfMetrics bool
	// Reader is the Reader the gatherer scans with, and so its limits and trusted file
	// owners (mmapstore.NewReaderWith); the gatherer's Close closes it. Zero:
	// mmapstore.NewReader(), with the default limits.
	Reader *mmapstore.Reader
	// Reserved names the families the caller serves beside the gatherer's (a Renderer's
	// own, say). A family of the files with one of these names, as written or as exposed,
	// is left out, logged once and counted in herd_metrics_families_dropped, like one
	// named after the gatherer's own families: a file cannot shadow or duplicate them.
	Reserved []string
}

// DirGatherer merges every metric file of one directory, the way client_python's
// MultiProcessCollector does, into sorted metric families. It is what the master serves on
// /metrics. It reads incrementally: each file's keys are parsed once, later scrapes only
// parse appended entries and load values.
//
// Bad files (empty, truncated, corrupt, foreign, unknown prefix) are skipped, never fail a
// scrape; their number is reported in herd_metrics_files_skipped. A family of the files
// named like one of the gatherer's own (herd_metrics_files and the others listed at
// GathererOpts.OmitSelfMetrics) is left out, logged once and counted in
// herd_metrics_families_dropped: a file cannot shadow them.
//
// A DirGatherer is safe for concurrent use; scrapes are serialised.
type DirGatherer struct {
	dir    string
	opts   GathererOpts
	reader *mmapstore.Reader

	mu     sync.Mutex // guards the fields below
	merger *merger
	logged map[string]string // path -> reason already logged

	once *onceLogger // conflicts, each logged once
	les  leTexts     // rendered histogram bounds, for fast scrapes (guarded by mu)

	afterFile func(path string) // tests: called after each file is merged
}

// NewDirGatherer returns a Gatherer over dir. The directory is read on every Gather, not
// now: it may not exist yet.
func NewDirGatherer(dir string, opts GathererOpts) *DirGatherer {
	reader := opts.Reader
	if reader == nil {
		reader = mmapstore.NewReader()
	}
	m := newMerger()
	m.reservedNames = slices.Clone(opts.Reserved)
	return &DirGatherer{dir: dir, opts: opts, reader: reader, merger: m,
		logged: make(map[string]string), once: newOnceLogger(opts.Logger)}
}

// Close releases the mappings of the files read so far. The DirGatherer may be used again
// afterwards (it starts from scratch); calling Close twice is harmless.
func (g *DirGatherer) Close() error {
	return g.reader.Close()
}

// Dir returns the directory read.
func (g *DirGatherer) Dir() string { return g.dir }

// Gather reads and merges the directory. It fails only if the directory cannot be read.
// The families are allocated anew by every call and the caller may keep them, but, as in
// client_golang (whose metrics hand the same label pairs to every Write), each series'
// label pairs are made once and shared by every Gather: treat them as read-only.
func (g *DirGatherer) Gather() ([]*dto.MetricFamily, error) {
	start := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	fas, self, err := g.mergeLocked(start)
	if err != nil {
		return nil, err
	}
	fams := make([]*dto.MetricFamily, 0, len(fas)+len(self))
	for _, fa := range fas {
		if mf := fa.build(g.merger.gen); mf != nil {
			fams = append(fams, mf)
		}
	}
	fams = append(fams, self...)
	sortFamilies(fams)
	return fams, nil
}

// Warm reads and merges the directory as a scrape does, without building or rendering the
// families: the files are mapped, their keys parsed, their series made and the series'
// label text rendered, which is what makes a first scrape slow (tens of milliseconds for
// 80,000 entries, against about one for a scrape after it). A server calls it in the
// background when it starts, so that the first scrape finds that work done. It fails only
// if the directory cannot be read.
func (g *DirGatherer) Warm() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	fas, _, err := g.mergeLocked(time.Now())
	for _, fa := range fas {
		fa.order()
		if fa.textsDue {
			fa.labelTexts(&g.les.labels)
		}
	}
	return err
}

// families merges the directory and returns its families, unsorted, for a scrape that
// renders them while g.mu is held (see family). The caller holds g.mu.
func (g *DirGatherer) familiesLocked(start time.Time) ([]family, error) {
	fas, self, err := g.mergeLocked(start)
	if err != nil {
		return nil, err
	}
	fams := make([]family, 0, len(fas)+len(self))
	for _, fa := range fas {
		fams = append(fams, family{name: fa.name, fa: fa, gen: g.merger.gen})
	}
	for _, mf := range self {
		fams = append(fams, family{name: mf.GetName(), mf: mf})
	}
	return fams, nil
}

// mergeLocked reads and merges the directory. It returns the families of the files to
// expose, sorted by name, valid until the next merge, and the gatherer's own families. The
// caller holds g.mu.
func (g *DirGatherer) mergeLocked(start time.Time) ([]*famAgg, []*dto.MetricFamily, error) {
	// Each file is merged as soon as it is read, while its samples are in the CPU cache;
	// ScanDirFunc hands files over in name (so path) order, as the merge requires.
	g.merger.begin()
	nfiles := 0
	skipped, err := g.reader.ScanDirFunc(g.dir, func(f *mmapstore.FileSamples) {
		nfiles++
		g.merger.addFile(f)
		if g.afterFile != nil {
			g.afterFile(f.Path)
		}
	})
	fas := g.merger.end()
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: read %s: %w", g.dir, err)
	}
	g.logSkipped(skipped)
	for _, name := range g.merger.reserved {
		g.once.warn("reserved\x00"+name, "metrics: left out a metric family of the files that uses a reserved name (one of the gatherer's own families' or GathererOpts.Reserved)", "family", name)
	}
	if g.opts.OmitSelfMetrics {
		return fas, nil, nil
	}
	return fas, []*dto.MetricFamily{
		gaugeFamily("herd_metrics_files", filesHelp, float64(nfiles)),
		gaugeFamily("herd_metrics_files_skipped", filesSkippedHelp, float64(len(skipped))),
		gaugeFamily("herd_metrics_scrape_duration_seconds", scrapeDurationHelp, time.Since(start).Seconds()),
		gaugeFamily(familiesDroppedName, familiesDroppedHelp, float64(len(g.merger.reserved))),
	}, nil
}

// The DirGatherer's own families. Families of the files named like one of them are left out
// (see merger.finish), so a file can never shadow them.
const (
	filesHelp          = "Metric files merged by the last scrape."
	filesSkippedHelp   = "Metric files skipped by the last scrape because they were empty, truncated, corrupt or foreign (see the log)."
	scrapeDurationHelp = "Time the last scrape took to read and merge the metric files."
)

// selfFamily reports whether name is one of the DirGatherer's own families.
func selfFamily(name string) bool {
	switch name {
	case "herd_metrics_files", "herd_metrics_files_skipped", "herd_metrics_scrape_duration_seconds", familiesDroppedName:
		return true
	}
	return false
}

func (g *DirGatherer) logSkipped(skipped []mmapstore.SkippedFile) {
	if g.opts.Logger == nil {
		return
	}
	for _, s := range skipped {
		reason := fmt.Sprint(s.Reason)
		if g.logged[s.Path] == reason {
			continue
		}
		if len(g.logged) > 10000 {
			clear(g.logged)
		}
		g.logged[s.Path] = reason
		g.opts.Logger.Warn("metrics: skipped a metric file", "path", s.Path, "reason", reason)
	}
}

func gaugeFamily(name, help string, v float64) *dto.MetricFamily {
	return &dto.MetricFamily{
		Name:   &name,
		Help:   &help,
		Type:   dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}},
	}
}

// liveModes are the gauge modes whose files RemoveLiveFiles deletes.
var liveModes = [...]GaugeMode{GaugeLiveAll, GaugeLiveMin, GaugeLiveMax, GaugeLiveSum, GaugeLiveMostRecent}

// RemoveLiveFiles deletes the live* gauge files of the process with file id id from dir:
// client_python's mark_process_dead. The master calls it when it reaps a worker, after which
// the worker's live gauges no longer count; everything else it wrote stays (counters never
// go backwards). Files that do not exist are not an error.
func RemoveLiveFiles(dir, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	var errs []error
	for _, m := range liveModes {
		p := filepath.Join(dir, "gauge_"+string(m)+"_"+id+".db")
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("metrics: remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
