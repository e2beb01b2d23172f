package main

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/mmapstore"
)

// skippedName is the exporter's family of skipped files by reason.
const (
	skippedName = "herd_exporter_files_skipped"
	skippedHelp = "Metric files skipped by the last scrape, by reason (see the log)."
	// logExamples is how many new skipped files a log line names per reason.
	logExamples = 3
)

// gatherer reads every file of the directory through a DirGatherer with a
// Reader of the exporter's limits and trusted owners, and adds
// herd_exporter_files_skipped{reason}; it logs, per scrape, one line per reason
// for the files newly skipped: a directory of 20,000 bad files costs a few
// lines, not 20,000. It is a metrics.Renderer beside its DirGatherer, so that
// metrics.Handler renders text and OpenMetrics scrapes straight from the merged
// files, as the master's /metrics does; only protobuf scrapes go through
// Gather. The directory rules are checked before every scrape by the /metrics
// handler (see newHandler).
type gatherer struct {
	dir     string
	trusted []int
	reader  *mmapstore.Reader
	files   *metrics.DirGatherer
	log     *slog.Logger

	mu   sync.Mutex        // guards prev
	prev map[string]string // path -> kind, skipped by the previous scrape
}

func newGatherer(c config, log *slog.Logger) *gatherer {
	r := mmapstore.NewReaderWith(mmapstore.ReaderOptions{
		MaxFiles:     c.maxFiles,
		MaxFileBytes: c.maxFileBytes,
		MaxSeries:    c.maxSeries,
		Owners:       c.trusted,
	})
	return &gatherer{
		dir:     c.dir,
		trusted: c.trusted,
		reader:  r,
		// No Logger: the skipped files are logged here, summarised. A family of the
		// files named like the exporter's own is left out, and counted.
		files: metrics.NewDirGatherer(c.dir, metrics.GathererOpts{Reader: r, Reserved: []string{skippedName}}),
		log:   log,
	}
}

// Gather returns the directory's families and herd_exporter_files_skipped,
// sorted by name.
func (g *gatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := g.files.Gather()
	if err != nil {
		return nil, err
	}
	fam := skippedFamily(g.logSkipped(g.reader.Skipped()))
	i, _ := slices.BinarySearchFunc(fams, skippedName, func(mf *dto.MetricFamily, name string) int {
		return cmp.Compare(mf.GetName(), name)
	})
	return slices.Insert(fams, i, fam), nil
}

// Beside is the DirGatherer, whose families metrics.Handler renders itself.
func (g *gatherer) Beside() metrics.Gatherer { return g.files }

// RenderFamilies appends herd_exporter_files_skipped to b, for the scrape whose
// directory read has just given the families in beside (the DirGatherer leaves
// out any of the files named like it).
func (g *gatherer) RenderFamilies(b []byte, format expfmt.Format, beside []metrics.FamilyType) ([]byte, []metrics.RenderedFamily) {
	fam := skippedFamily(g.logSkipped(g.reader.Skipped()))
	buf := bytes.NewBuffer(b)
	at := buf.Len()
	enc := expfmt.NewEncoder(buf, format)
	if err := enc.Encode(fam); err != nil {
		g.log.Error("metrics: encoding failed", "family", skippedName, "err", err)
		return b, nil
	}
	return buf.Bytes(), []metrics.RenderedFamily{{Name: skippedName, Start: at, End: buf.Len()}}
}

func (g *gatherer) Close() error { return g.files.Close() }

// logSkipped logs, per reason, the files skipped now that were not skipped
// for that reason by the previous scrape (how many, and the first few), and
// returns the count of every reason.
func (g *gatherer) logSkipped(skipped []mmapstore.SkippedFile) map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	type fresh struct {
		n        int
		examples []string
	}
	counts := map[string]int{}
	news := map[string]*fresh{}
	cur := make(map[string]string, len(skipped))
	for _, s := range skipped {
		k := s.Kind()
		counts[k]++
		cur[s.Path] = k
		if g.prev[s.Path] == k {
			continue
		}
		f := news[k]
		if f == nil {
			f = &fresh{}
			news[k] = f
		}
		f.n++
		if len(f.examples) < logExamples {
			f.examples = append(f.examples, filepath.Base(s.Path)+": "+s.Reason.Error())
		}
	}
	g.prev = cur
	for _, k := range mmapstore.SkipKinds() {
		if f := news[k]; f != nil {
			g.log.Warn("skipped metric files", "reason", k, "files", counts[k], "new", f.n,
				"first", strings.Join(f.examples, "; "))
		}
	}
	return counts
}

func skippedFamily(counts map[string]int) *dto.MetricFamily {
	name, help := skippedName, skippedHelp
	mf := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
	for _, k := range mmapstore.SkipKinds() {
		label, value, v := "reason", k, float64(counts[k])
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: &label, Value: &value}},
			Gauge: &dto.Gauge{Value: &v},
		})
	}
	return mf
}

// warm does the first scrape's work ahead of it, if the directory is safe to
// read, and logs how long it took.
func (g *gatherer) warm() {
	start := time.Now()
	if err := checkDir(g.dir, g.trusted); err != nil {
		g.log.Warn("metrics cache not warmed: refusing to read the directory", "err", err)
		return
	}
	if err := g.files.Warm(); err != nil {
		g.log.Warn("metrics cache not warmed", "err", err)
		return
	}
	st := g.reader.Stats()
	g.log.Info("metrics cache warmed", "files", st.Files, "entries", st.ParsedEntries, "took", time.Since(start).Round(time.Microsecond))
}

// newHandler serves /metrics (the merged directory) and /healthz.
func newHandler(c config, log *slog.Logger) http.Handler {
	return handlerFor(c, newGatherer(c, log), log)
}

// handlerFor is newHandler over the gatherer g.
func handlerFor(c config, g *gatherer, log *slog.Logger) http.Handler {
	scrape := metrics.Handler(g, metrics.HandlerOpts{Logger: log})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// A directory that became unsafe is not read.
		if err := checkDir(c.dir, c.trusted); err != nil {
			err = fmt.Errorf("refusing to read the directory: %w", err)
			log.Error("metrics: gather failed", "err", err)
			http.Error(w, "metrics: gather failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		scrape.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := checkDir(c.dir, c.trusted); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>%s</title></head><body><h1>%s</h1><p><a href=\"/metrics\">/metrics</a> <a href=\"/healthz\">/healthz</a></p></body></html>\n", name, name)
	})
	return mux
}
