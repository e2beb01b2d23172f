package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
)

// Gatherers merges the families of several Gatherers, like client_golang's
// prometheus.Gatherers: families of one name are joined and the result is sorted. Unlike
// client_golang's, a conflict between gatherers never fails the scrape (a reload that starts
// workers of a new binary beside the old master must not blank /metrics):
//
//   - a family whose help differs from the first gatherer's, with the same type, keeps the
//     first help and serves every series;
//   - a gatherer's family of another type than the first gatherer's, or holding a series
//     that was already gathered (from an earlier gatherer or earlier in the same family), is
//     left out whole: which of two values is right cannot be known.
//
// Each family left out is counted in herd_metrics_families_dropped, a gauge of the last
// Gather that Gatherers adds to its result (adding up those of herd's gatherers among gs),
// and each conflict is logged once, through the Logger of the first DirGatherer (or
// Registry) among gs. Gather returns an error only when a Gatherer fails, together with
// what the others gave.
//
// A family that only one of herd's own gatherers (DirGatherer, Registry, Gatherers) returns
// is passed through as it is: those already return unique series in sorted order, and
// checking them again would cost the master's scrape more than the merge itself.
type Gatherers []Gatherer

// checkedGatherer is implemented by herd's gatherers, whose families have unique names and
// unique series, sorted.
type checkedGatherer interface{ checked() }

func (*DirGatherer) checked() {}
func (*Registry) checked()    {}
func (Gatherers) checked()    {}

const (
	familiesDroppedName = "herd_metrics_families_dropped"
	familiesDroppedHelp = "Metric families left out of the last scrape because they conflicted with another of the same name (another type, a repeated series, or one of the gatherer's own names); see the log."
)

// Gather gathers from every Gatherer in order.
func (gs Gatherers) Gather() ([]*dto.MetricFamily, error) {
	srcs := make([]source, len(gs))
	for i, g := range gs {
		fams, err := g.Gather()
		srcs[i] = dtoSource(g, fams, err)
	}
	j := joiner{log: gs.onceLog()}
	joined, err := j.join(srcs)
	fams := make([]*dto.MetricFamily, 0, len(joined)+1)
	for i := range joined {
		if mf := joined[i].dto(); mf != nil {
			fams = append(fams, mf)
		}
	}
	fams = append(fams, j.droppedFamily())
	sortFamilies(fams)
	return fams, err
}

// family is one family of a scrape: a family of the merger's state, rendered from it by a
// fast scrape and built into a dto family only when needed, or a dto family.
type family struct {
	name string
	fa   *famAgg // with gen; valid while its DirGatherer's lock is held
	gen  uint64
	mf   *dto.MetricFamily
	pre  []byte // a Renderer's family, rendered (see appendRendered)
}

// dto returns the family as a dto family, building it from the merger's state if needed.
func (f *family) dto() *dto.MetricFamily {
	if f.mf == nil && f.fa != nil {
		f.mf = f.fa.build(f.gen)
	}
	return f.mf
}

func sortFamilyList(fs []family) {
	slices.SortStableFunc(fs, func(a, b family) int { return cmp.Compare(a.name, b.name) })
}

// source is what one gatherer gave.
type source struct {
	fams    []family
	checked bool // one of herd's gatherers: unique names and series
	err     error
}

func dtoSource(g Gatherer, fams []*dto.MetricFamily, err error) source {
	_, checked := g.(checkedGatherer)
	s := source{fams: make([]family, len(fams)), checked: checked, err: err}
	for i, mf := range fams {
		s.fams[i] = family{name: mf.GetName(), mf: mf}
	}
	return s
}

// onceLog returns the conflict log of the first of herd's gatherers among gs, depth first.
func (gs Gatherers) onceLog() *onceLogger {
	for _, g := range gs {
		switch g := g.(type) {
		case *DirGatherer:
			return g.once
		case *Registry:
			return g.gath.once
		case Gatherers:
			if l := g.onceLog(); l != nil {
				return l
			}
		}
	}
	return nil
}

// joiner joins the families of several gatherers, dropping and counting conflicts.
type joiner struct {
	log     *onceLogger // nil: conflicts are only counted
	dropped int
}

// part is one gatherer's family of a name.
type part struct {
	i       int // the gatherer's index
	f       *family
	checked bool
}

// join joins the families of srcs, given in gatherer order, and returns them unsorted
// with the gatherers' errors.
func (j *joiner) join(srcs []source) ([]family, error) {
	var errs []error
	byName := make(map[string][]part)
	var names []string // in order of first appearance
	for i := range srcs {
		src := &srcs[i]
		if src.err != nil {
			errs = append(errs, fmt.Errorf("gatherer %d: %w", i, src.err))
		}
		for k := range src.fams {
			f := &src.fams[k]
			if f.name == familiesDroppedName {
				if src.checked { // herd's own count, of what it dropped: add it up
					j.dropped += int(selfValue(f.dto()))
				} else {
					j.drop(i, f.name, "reserved", "metrics: left out a metric family that uses the name of the gatherer's own")
				}
				continue
			}
			if _, ok := byName[f.name]; !ok {
				names = append(names, f.name)
			}
			byName[f.name] = append(byName[f.name], part{i, f, src.checked})
		}
	}
	out := make([]family, 0, len(names))
	for _, name := range names {
		if f, ok := j.joinFamily(name, byName[name]); ok {
			out = append(out, f)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("metrics: %w", errors.Join(errs...))
	}
	return out, nil
}

// droppedFamily returns the family herd_metrics_families_dropped of what j dropped.
func (j *joiner) droppedFamily() *dto.MetricFamily {
	return gaugeFamily(familiesDroppedName, familiesDroppedHelp, float64(j.dropped))
}

// joinFamily joins the parts of one family name, in gatherer order; false if all were left
// out.
func (j *joiner) joinFamily(name string, parts []part) (family, bool) {
	if len(parts) == 1 && parts[0].checked {
		return *parts[0].f, true
	}
	var have *dto.MetricFamily
	seen := make(map[string]bool) // labels of every series joined
	var ids []string              // the current part's
	for _, p := range parts {
		mf := p.f.dto()
		if mf == nil {
			continue
		}
		if have != nil && have.GetType() != mf.GetType() {
			j.drop(p.i, name, "type", "metrics: left out a metric family of conflicting type",
				"type", mf.GetType().String(), "kept_type", have.GetType().String())
			continue
		}
		ids = ids[:0]
		var repeated *dto.Metric
		for _, m := range mf.Metric {
			id := seriesID(name, m)
			if seen[id] {
				repeated = m
				break
			}
			seen[id] = true
			ids = append(ids, id)
		}
		if repeated != nil {
			for _, id := range ids {
				delete(seen, id)
			}
			j.drop(p.i, name, "repeat", "metrics: left out a metric family that repeats a series",
				"series", name+"{"+labelString(repeated)+"}")
			continue
		}
		if have == nil {
			have = &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
		} else if have.GetHelp() != mf.GetHelp() {
			j.log.warn(fmt.Sprintf("help\x00%s\x00%d", name, p.i), "metrics: a metric family has different help texts; kept the first",
				"family", name, "gatherer", p.i, "help", mf.GetHelp(), "kept_help", have.GetHelp())
		}
		have.Metric = append(have.Metric, mf.Metric...)
	}
	if have == nil {
		return family{}, false
	}
	sortMetrics(have.Metric)
	return family{name: name, mf: have}, true
}

// drop counts a gatherer's family left out and logs it once.
func (j *joiner) drop(i int, name, kind, msg string, args ...any) {
	j.dropped++
	j.log.warn(fmt.Sprintf("%s\x00%s\x00%d", kind, name, i), msg, append([]any{"family", name, "gatherer", i}, args...)...)
}

// selfValue returns the value of a one-sample gauge family.
func selfValue(mf *dto.MetricFamily) float64 {
	if len(mf.Metric) != 1 {
		return 0
	}
	return mf.Metric[0].GetGauge().GetValue()
}

// onceLogger logs each distinct conflict once (remembering a bounded number of them).
type onceLogger struct {
	logger *slog.Logger
	mu     sync.Mutex
	seen   map[string]bool
}

func newOnceLogger(l *slog.Logger) *onceLogger {
	return &onceLogger{logger: l, seen: make(map[string]bool)}
}

// warn logs msg unless a message of the same key was logged before. A nil o logs nothing.
func (o *onceLogger) warn(key, msg string, args ...any) {
	if o == nil || o.logger == nil {
		return
	}
	o.mu.Lock()
	if o.seen[key] {
		o.mu.Unlock()
		return
	}
	if len(o.seen) >= 10000 {
		clear(o.seen)
	}
	o.seen[key] = true
	o.mu.Unlock()
	o.logger.Warn(msg, args...)
}

func seriesID(name string, m *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	for _, lp := range sortedLabels(m) {
		b.WriteByte(0)
		b.WriteString(lp.GetName())
		b.WriteByte(0)
		b.WriteString(lp.GetValue())
	}
	return b.String()
}

func sortedLabels(m *dto.Metric) []*dto.LabelPair {
	l := append([]*dto.LabelPair(nil), m.GetLabel()...)
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].GetName() < l[j-1].GetName(); j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, lp := range sortedLabels(m) {
		parts = append(parts, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
	}
	return strings.Join(parts, ",")
}
