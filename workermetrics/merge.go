package workermetrics

import (
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// source is one live worker's snapshot as the merge sees it.
type source struct {
	worker  string // its file id, the value of the worker label
	started int64  // its start time, from its file names
	fams    []family
	// perWorker is false for an older instance with the same id as a newer
	// one (never expected: a replacement takes a lane only after its
	// predecessor died): its per-worker series would duplicate the newer
	// one's, so only its counters and histograms count.
	perWorker bool
}

// dropReason says why a family was left out of the scrape.
type dropReason int

const (
	dropHerdName     dropReason = iota // its name clashes with one of herd's families
	dropTypeConflict                   // two workers gave it different types
	dropWorkerLabel                    // a per-worker family that already has a worker label
	dropInvalid                        // a series without a value of its type, bad labels, a series twice
	numDropReasons
	noDrop = numDropReasons // a family that can be served
)

var dropReasonNames = [numDropReasons]string{"herd_name", "type_conflict", "worker_label", "invalid"}

// workerLabel is the label that tells the series of per-worker families
// apart.
const workerLabel = "worker"

// part is one family of one name, from a worker (index into the sources)
// or from the dead workers' totals (index -1).
type part struct {
	src int
	f   *family
}

// merger merges snapshots by the rules of the package documentation.
type merger struct {
	perWorker []string        // name prefixes of the per-process collectors
	reserved  map[string]bool // names of herd's families, in every exposition form
}

// perWorkerFamily reports whether a family of this name and type gets one
// series per worker instead of a sum.
func (m *merger) perWorkerFamily(name string, t dto.MetricType) bool {
	switch t {
	case dto.MetricType_COUNTER, dto.MetricType_HISTOGRAM:
	default:
		return true
	}
	for _, p := range m.perWorker {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// clashes reports whether a family would collide with one of herd's in any
// exposition format.
func (m *merger) clashes(name string, t dto.MetricType) bool {
	if strings.HasPrefix(name, "herd_") {
		return true
	}
	for _, n := range expositionNames(name, t) {
		if m.reserved[n] {
			return true
		}
	}
	return false
}

// reserve records the names of herd's families.
func (m *merger) reserve(fams []metrics.FamilyType) {
	clear(m.reserved)
	if m.reserved == nil {
		m.reserved = make(map[string]bool)
	}
	for _, f := range fams {
		for _, n := range expositionNames(f.Name, f.Type) {
			m.reserved[n] = true
		}
	}
}

// familyTypes lists the names and types of fams.
func familyTypes(fams []*dto.MetricFamily) []metrics.FamilyType {
	out := make([]metrics.FamilyType, len(fams))
	for i, mf := range fams {
		out[i] = metrics.FamilyType{Name: mf.GetName(), Type: mf.GetType()}
	}
	return out
}

// expositionNames lists the names a family occupies: its own, its samples'
// (the _bucket, _sum and _count of histograms and summaries) and, for a
// counter, the name without _total that OpenMetrics gives its family.
func expositionNames(name string, t dto.MetricType) []string {
	switch t {
	case dto.MetricType_COUNTER:
		base := strings.TrimSuffix(name, "_total")
		return []string{name, base, base + "_total", base + "_created"}
	case dto.MetricType_HISTOGRAM:
		return []string{name, name + "_bucket", name + "_sum", name + "_count", name + "_created"}
	case dto.MetricType_GAUGE_HISTOGRAM:
		return []string{name, name + "_bucket", name + "_gsum", name + "_gcount"}
	case dto.MetricType_SUMMARY:
		return []string{name, name + "_sum", name + "_count", name + "_created"}
	}
	return []string{name}
}

// mergedFamily is a family of the merge as served: a sum (counters and
// histograms not per worker), or the per-worker series of the live workers.
type mergedFamily struct {
	sum   family    // a summed family; for a per-worker one, only sum.mf (name, help, type, unit)
	parts []*family // a per-worker family: the live workers' families, whose mf.Metric carry the worker label
}

func (s *mergedFamily) perWorker() bool { return s.parts != nil }

// dto returns the family as a dto family. It points into the merge's
// families, which must not change.
func (s *mergedFamily) dto() *dto.MetricFamily {
	if s.perWorker() {
		return perWorkerSeries(s.sum.mf, s.parts)
	}
	return summedDTO(&s.sum)
}

// merge merges the live workers' snapshots and the dead workers' totals
// into families sorted by name, and counts the families it dropped by
// reason. Series come in the workers' order (client_golang sorts them).
func (m *merger) merge(srcs []source, dead []family) (out []*dto.MetricFamily, drops [numDropReasons]int) {
	fams, drops := m.mergeServed(srcs, dead)
	out = make([]*dto.MetricFamily, len(fams))
	for i := range fams {
		out[i] = fams[i].dto()
	}
	return out, drops
}

// mergeServed is merge, its families as served.
func (m *merger) mergeServed(srcs []source, dead []family) (out []mergedFamily, drops [numDropReasons]int) {
	byName := make(map[string][]part, 2*len(dead)+16)
	var names []string
	add := func(src int, f *family) {
		n := f.mf.GetName()
		ps, ok := byName[n]
		if !ok {
			names = append(names, n)
		}
		byName[n] = append(ps, part{src, f})
	}
	for i := range srcs {
		for j := range srcs[i].fams {
			add(i, &srcs[i].fams[j])
		}
	}
	for j := range dead {
		add(-1, &dead[j])
	}
	sort.Strings(names)
	out = make([]mergedFamily, 0, len(names))
	for _, name := range names {
		parts := byName[name]
		t := parts[0].f.mf.GetType()
		if m.clashes(name, t) {
			drops[dropHerdName]++
			continue
		}
		if slices.ContainsFunc(parts[1:], func(p part) bool { return p.f.mf.GetType() != t }) {
			drops[dropTypeConflict]++
			continue
		}
		why := noDrop
		for _, p := range parts {
			why = min(why, p.f.drop)
		}
		var s mergedFamily
		if why == noDrop {
			if parts[0].f.perWorker {
				s = mergedFamily{sum: family{mf: parts[0].f.mf}, parts: liveParts(srcs, parts)}
			} else {
				s.sum, why = sum(parts)
			}
		}
		if why != noDrop {
			drops[why]++
			continue
		}
		if s.perWorker() && len(s.parts) > 0 || !s.perWorker() && len(s.sum.sets) > 0 {
			out = append(out, s)
		}
	}
	return out, drops
}

// fold adds the counters and histograms of a dead worker's last snapshot to
// the dead workers' totals and returns the new totals. A family whose type
// differs from the totals' keeps the totals'; one that cannot be served is
// left out.
func (m *merger) fold(dead, snap []family) []family {
	byName := make(map[string][]part, len(dead)+len(snap))
	for i := range dead {
		byName[dead[i].mf.GetName()] = []part{{-1, &dead[i]}}
	}
	for i := range snap {
		f := &snap[i]
		name := f.mf.GetName()
		if f.perWorker || f.drop != noDrop {
			continue
		}
		ps := byName[name]
		if len(ps) > 0 && (ps[0].f.mf.GetType() != f.mf.GetType() || ps[len(ps)-1].src == 0) {
			continue // a type conflict, or the name twice in the snapshot
		}
		byName[name] = append(ps, part{0, f})
	}
	out := make([]family, 0, len(byName))
	for _, ps := range byName {
		if len(ps) == 1 && ps[0].src < 0 {
			out = append(out, *ps[0].f)
			continue
		}
		if f, why := sum(ps); why == noDrop {
			out = append(out, f)
		} else if ps[0].src < 0 {
			out = append(out, *ps[0].f) // the snapshot's family cannot be added
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].mf.GetName() < out[j].mf.GetName() })
	return out
}

// slot is one series of a summed family being built.
type slot struct {
	set   *labelSet
	value float64 // counters
	hists []*hist // histograms
	src   int     // the last source that added to it, to find a series given twice
}

// sum adds up the series of a counter or histogram family over its parts,
// keyed by label set.
func sum(parts []part) (family, dropReason) {
	first := parts[0].f
	if len(parts) == 1 {
		return *first, noDrop
	}
	counter := first.mf.GetType() == dto.MetricType_COUNTER
	if sameSeries(parts) {
		return sumInOrder(parts, counter)
	}
	index := make(map[string]int, len(first.sets))
	slots := make([]slot, 0, len(first.sets))
	for _, p := range parts {
		for i, set := range p.f.sets {
			j, ok := index[set.key]
			if !ok {
				j = len(slots)
				index[set.key] = j
				slots = append(slots, slot{set: set, src: -2})
			}
			s := &slots[j]
			if s.src == p.src {
				return family{}, dropInvalid
			}
			s.src = p.src
			if counter {
				s.value += p.f.vals[i]
			} else {
				s.hists = append(s.hists, &p.f.hists[i])
			}
		}
	}
	out := family{
		mf:   &dto.MetricFamily{Name: first.mf.Name, Help: first.mf.Help, Type: first.mf.Type, Unit: first.mf.Unit},
		sets: make([]*labelSet, len(slots)),
		drop: noDrop,
	}
	if counter {
		out.vals = make([]float64, len(slots))
	} else {
		out.hists = make([]hist, len(slots))
	}
	for i := range slots {
		s := &slots[i]
		out.sets[i] = s.set
		if counter {
			out.vals[i] = s.value
			continue
		}
		h, ok := mergeHists(s.hists)
		if !ok {
			return family{}, dropInvalid
		}
		out.hists[i] = h
	}
	return out, noDrop
}

// sameSeries reports whether every part has the same series in the same
// order, as workers of one binary usually do.
func sameSeries(parts []part) bool {
	first := parts[0].f.sets
	for _, p := range parts[1:] {
		sets := p.f.sets
		if len(sets) != len(first) {
			return false
		}
		for i, s := range sets {
			if s.key != first[i].key {
				return false
			}
		}
	}
	return true
}

// sumInOrder is sum when sameSeries holds: series by position, no index.
// The first part's label sets have no series twice (the decoder checks),
// so neither has any part.
func sumInOrder(parts []part, counter bool) (family, dropReason) {
	first := parts[0].f
	n := len(first.sets)
	out := family{
		mf:   &dto.MetricFamily{Name: first.mf.Name, Help: first.mf.Help, Type: first.mf.Type, Unit: first.mf.Unit},
		sets: first.sets,
		drop: noDrop,
	}
	if counter {
		out.vals = make([]float64, n)
		for _, p := range parts {
			for i, v := range p.f.vals {
				out.vals[i] += v
			}
		}
		return out, noDrop
	}
	out.hists = make([]hist, n)
	hs := make([]*hist, len(parts))
	for i := range n {
		for j, p := range parts {
			hs[j] = &p.f.hists[i]
		}
		h, ok := mergeHists(hs)
		if !ok {
			return family{}, dropInvalid
		}
		out.hists[i] = h
	}
	return out, noDrop
}

// summedDTO returns a summed family as served. It points into f, which
// must not change.
func summedDTO(f *family) *dto.MetricFamily {
	n := len(f.sets)
	out := &dto.MetricFamily{Name: f.mf.Name, Help: f.mf.Help, Type: f.mf.Type, Unit: f.mf.Unit, Metric: make([]*dto.Metric, n)}
	ms := make([]dto.Metric, n)
	var counters []dto.Counter
	if f.vals != nil {
		counters = make([]dto.Counter, n)
	}
	for i := range ms {
		m := &ms[i]
		m.Label = f.sets[i].labels
		if counters != nil {
			m.Counter = &counters[i]
			m.Counter.Value = &f.vals[i]
		} else {
			m.Histogram = f.hists[i].toDTO()
		}
		out.Metric[i] = m
	}
	return out
}

// liveParts returns the parts of a per-worker family from live workers
// that serve their per-worker series, and have some. The dead workers'
// totals have none. Nil if none.
func liveParts(srcs []source, parts []part) []*family {
	var live []*family
	for _, p := range parts {
		if p.src >= 0 && srcs[p.src].perWorker && len(p.f.mf.Metric) > 0 {
			live = append(live, p.f)
		}
	}
	return live
}

// perWorkerSeries gives every live worker's series of the family, which
// carry their worker label since decoding.
func perWorkerSeries(first *dto.MetricFamily, live []*family) *dto.MetricFamily {
	out := &dto.MetricFamily{Name: first.Name, Help: first.Help, Type: first.Type, Unit: first.Unit}
	if len(live) == 1 {
		out.Metric = live[0].metrics()
		return out
	}
	n := 0
	for _, f := range live {
		n += len(f.mf.Metric)
	}
	out.Metric = make([]*dto.Metric, 0, n)
	for _, f := range live {
		out.Metric = append(out.Metric, f.metrics()...)
	}
	return out
}

func compareLabels(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }
