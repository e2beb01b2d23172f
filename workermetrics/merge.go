package workermetrics

import (
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// source is one live worker's snapshot as the merge sees it.
type source struct {
	worker  string // its file id, the value of the worker label
	started int64  // its start time, from its file names
	fams    []*dto.MetricFamily
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
)

var dropReasonNames = [numDropReasons]string{"herd_name", "type_conflict", "worker_label", "invalid"}

// workerLabel is the label that tells the series of per-worker families
// apart.
const workerLabel = "worker"

// part is one family of one name, from a worker (index into the sources)
// or from the dead workers' totals (index -1).
type part struct {
	src int
	mf  *dto.MetricFamily
}

// merger merges snapshots by the rules of the package documentation.
type merger struct {
	perWorker []string        // name prefixes of the per-process collectors
	reserved  map[string]bool // names of herd's families, in every exposition form
	key       []byte          // scratch for labelKey
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
func (m *merger) reserve(fams []*dto.MetricFamily) {
	clear(m.reserved)
	if m.reserved == nil {
		m.reserved = make(map[string]bool)
	}
	for _, mf := range fams {
		for _, n := range expositionNames(mf.GetName(), mf.GetType()) {
			m.reserved[n] = true
		}
	}
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

// merge merges the live workers' snapshots and the dead workers' totals
// into sorted families, and counts the families it dropped by reason.
func (m *merger) merge(srcs []source, dead []*dto.MetricFamily) (out []*dto.MetricFamily, drops [numDropReasons]int) {
	byName := make(map[string][]part)
	for i, s := range srcs {
		for _, mf := range s.fams {
			byName[mf.GetName()] = append(byName[mf.GetName()], part{i, mf})
		}
	}
	for _, mf := range dead {
		byName[mf.GetName()] = append(byName[mf.GetName()], part{-1, mf})
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out = make([]*dto.MetricFamily, 0, len(names))
	for _, name := range names {
		parts := byName[name]
		t := parts[0].mf.GetType()
		if m.clashes(name, t) {
			drops[dropHerdName]++
			continue
		}
		if slices.ContainsFunc(parts[1:], func(p part) bool { return p.mf.GetType() != t }) {
			drops[dropTypeConflict]++
			continue
		}
		var mf *dto.MetricFamily
		var why dropReason
		if m.perWorkerFamily(name, t) {
			mf, why = m.perWorkerSeries(srcs, parts)
		} else {
			mf, why = m.sum(parts)
		}
		if mf == nil {
			drops[why]++
			continue
		}
		if len(mf.Metric) > 0 {
			out = append(out, mf)
		}
	}
	return out, drops
}

// fold adds the counters and histograms of a dead worker's last snapshot to
// the dead workers' totals and returns the new totals. A family whose type
// differs from the totals' keeps the totals'; an invalid one is left out.
func (m *merger) fold(dead, snap []*dto.MetricFamily) []*dto.MetricFamily {
	byName := make(map[string][]part, len(dead)+len(snap))
	for _, mf := range dead {
		byName[mf.GetName()] = []part{{-1, mf}}
	}
	for _, mf := range snap {
		name, t := mf.GetName(), mf.GetType()
		if m.perWorkerFamily(name, t) {
			continue
		}
		ps := byName[name]
		if len(ps) > 0 && ps[0].mf.GetType() != t || slices.ContainsFunc(ps, func(p part) bool { return p.src == 0 }) {
			continue // a type conflict, or a name twice in one snapshot
		}
		byName[name] = append(ps, part{0, mf})
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, ps := range byName {
		if len(ps) == 1 && ps[0].src < 0 {
			out = append(out, ps[0].mf)
			continue
		}
		if mf, _ := m.sum(ps); mf != nil {
			out = append(out, mf)
		} else if ps[0].src < 0 {
			out = append(out, ps[0].mf) // the snapshot's family is invalid
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// summed is one series of a summed family being built.
type summed struct {
	key    string
	labels []*dto.LabelPair
	value  float64          // counters
	hists  []*dto.Histogram // histograms
	src    int              // the last part that added to it, to find a series given twice
}

// sum adds up the series of a counter or histogram family over its parts.
func (m *merger) sum(parts []part) (*dto.MetricFamily, dropReason) {
	first := parts[0].mf
	t := first.GetType()
	index := make(map[string]*summed, len(first.Metric))
	var series []*summed
	for pi, p := range parts {
		for _, mt := range p.mf.Metric {
			labels, ok := checkMetric(mt, t)
			if !ok {
				return nil, dropInvalid
			}
			m.key = labelKey(m.key[:0], labels)
			s := index[string(m.key)]
			if s == nil {
				s = &summed{key: string(m.key), labels: labels, src: -1}
				index[s.key] = s
				series = append(series, s)
			} else if s.src == pi {
				return nil, dropInvalid
			}
			s.src = pi
			if t == dto.MetricType_COUNTER {
				s.value += mt.Counter.GetValue()
			} else {
				s.hists = append(s.hists, mt.Histogram)
			}
		}
	}
	sort.Slice(series, func(i, j int) bool { return compareLabelSets(series[i].labels, series[j].labels) < 0 })
	out := &dto.MetricFamily{Name: first.Name, Help: first.Help, Type: first.Type, Unit: first.Unit,
		Metric: make([]*dto.Metric, 0, len(series))}
	for _, s := range series {
		if t == dto.MetricType_COUNTER {
			v := s.value
			out.Metric = append(out.Metric, &dto.Metric{Label: s.labels, Counter: &dto.Counter{Value: &v}})
			continue
		}
		h, ok := mergeHistograms(s.hists)
		if !ok {
			return nil, dropInvalid
		}
		out.Metric = append(out.Metric, &dto.Metric{Label: s.labels, Histogram: h})
	}
	return out, 0
}

// perWorkerSeries gives every live worker's series of the family, each with
// a worker label. The dead workers' totals have none.
func (m *merger) perWorkerSeries(srcs []source, parts []part) (*dto.MetricFamily, dropReason) {
	first := parts[0].mf
	t := first.GetType()
	var series []*dto.Metric
	seen := make(map[string]bool)
	for _, p := range parts {
		if p.src < 0 || !srcs[p.src].perWorker {
			continue
		}
		name, value := workerLabel, srcs[p.src].worker
		wl := &dto.LabelPair{Name: &name, Value: &value}
		for _, mt := range p.mf.Metric {
			labels, ok := checkMetric(mt, t)
			if !ok {
				return nil, dropInvalid
			}
			i, found := slices.BinarySearchFunc(labels, workerLabel, func(lp *dto.LabelPair, n string) int {
				return strings.Compare(lp.GetName(), n)
			})
			if found {
				return nil, dropWorkerLabel
			}
			withWorker := make([]*dto.LabelPair, 0, len(labels)+1)
			withWorker = append(append(append(withWorker, labels[:i]...), wl), labels[i:]...)
			m.key = labelKey(m.key[:0], withWorker)
			if seen[string(m.key)] {
				return nil, dropInvalid
			}
			seen[string(m.key)] = true
			series = append(series, &dto.Metric{
				Label:       withWorker,
				Counter:     mt.Counter,
				Gauge:       mt.Gauge,
				Untyped:     mt.Untyped,
				Summary:     mt.Summary,
				Histogram:   mt.Histogram,
				TimestampMs: mt.TimestampMs,
			})
		}
	}
	sort.Slice(series, func(i, j int) bool { return compareLabelSets(series[i].Label, series[j].Label) < 0 })
	return &dto.MetricFamily{Name: first.Name, Help: first.Help, Type: first.Type, Unit: first.Unit, Metric: series}, 0
}

// checkMetric checks that mt has a value of type t and valid labels, and
// returns its labels sorted by name (mt's own slice when it is sorted, as
// client_golang's are).
func checkMetric(mt *dto.Metric, t dto.MetricType) ([]*dto.LabelPair, bool) {
	if mt == nil {
		return nil, false
	}
	var ok bool
	reserved := ""
	switch t {
	case dto.MetricType_COUNTER:
		ok = mt.Counter != nil
	case dto.MetricType_GAUGE:
		ok = mt.Gauge != nil
	case dto.MetricType_UNTYPED:
		ok = mt.Untyped != nil
	case dto.MetricType_SUMMARY:
		ok, reserved = mt.Summary != nil, "quantile"
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		ok, reserved = mt.Histogram != nil, "le"
	}
	if !ok {
		return nil, false
	}
	labels := mt.Label
	if !slices.IsSortedFunc(labels, compareLabels) {
		labels = slices.SortedFunc(slices.Values(labels), compareLabels)
	}
	for i, lp := range labels {
		n := lp.GetName()
		if lp == nil || n == reserved || strings.HasPrefix(n, "__") || !model.UTF8Validation.IsValidLabelName(n) ||
			(i > 0 && labels[i-1].GetName() == n) {
			return nil, false
		}
	}
	return labels, true
}

func compareLabels(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }

// compareLabelSets orders label sets (each sorted by name) pair by pair,
// name then value: the order of the exposition.
func compareLabelSets(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].GetName(), b[i].GetName()); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// labelKey appends an identity of the label set (sorted by name) to b.
func labelKey(b []byte, labels []*dto.LabelPair) []byte {
	for _, lp := range labels {
		b = append(b, lp.GetName()...)
		b = append(b, 0xff)
		b = append(b, lp.GetValue()...)
		b = append(b, 0xfe)
	}
	return b
}
