package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// The merge follows client_python's MultiProcessCollector (mmap-format.md, "How the reader
// merges"): counters and summaries are summed over every file, live or dead; histogram
// buckets are summed by their float bound and made cumulative, _count being the total;
// gauges are merged per their mode. Type, help and gauge mode of a family come from the
// first file (in file name order) that has it. Unlike Python, the output is sorted: families
// by name, series by labels.

// keyInfo is what the merge derives from one key; it is computed once per distinct key and
// cached across scrapes (the reader interns keys, so the *Key pointer identifies them).
type keyInfo struct {
	sfx    string                // the sample name after the family name: "_total", "_sum", "", ...
	le     float64               // the "le" label as a float, when hasLE
	hasLE  bool                  // the key has a parsable "le" label
	labels []mmapstore.LabelPair // sorted, without "le" and without "pid"
	lkey   string                // labels encoded as one string (a map key)
	seen   uint64                // generation of the last merge that used it
}

// merger merges scanned files into metric families. Not safe for concurrent use.
type merger struct {
	keys map[*mmapstore.Key]*keyInfo
	gen  uint64
}

func newMerger() *merger { return &merger{keys: make(map[*mmapstore.Key]*keyInfo)} }

func (m *merger) info(k *mmapstore.Key) *keyInfo {
	ki := m.keys[k]
	if ki == nil {
		ki = deriveKey(k)
		m.keys[k] = ki
	}
	ki.seen = m.gen
	return ki
}

func deriveKey(k *mmapstore.Key) *keyInfo {
	ki := &keyInfo{sfx: k.Sample}
	if strings.HasPrefix(k.Sample, k.Family) {
		ki.sfx = k.Sample[len(k.Family):]
	} else {
		ki.sfx = "\x00" + k.Sample // matches no role
	}
	var b strings.Builder
	for _, lp := range k.Labels {
		switch lp.Name {
		case "le":
			if f, err := strconv.ParseFloat(lp.Value, 64); err == nil {
				ki.le, ki.hasLE = f, true
			}
			continue
		case "pid":
			// Gauges drop or replace it; other types keep it.
			ki.labels = append(ki.labels, lp)
			continue
		}
		ki.labels = append(ki.labels, lp)
		b.WriteString(lp.Name)
		b.WriteByte(0)
		b.WriteString(lp.Value)
		b.WriteByte(0)
	}
	ki.lkey = b.String()
	return ki
}

type famAgg struct {
	family string // as in the files
	typ    string
	mode   GaugeMode
	help   string
	series map[seriesKey]*seriesAgg
}

type seriesKey struct {
	labels string // keyInfo.lkey (+ pid for non-gauges that carry one)
	pid    string // gauges in the all modes: the file id
}

type bucket struct{ le, n float64 }

type seriesAgg struct {
	labels  []mmapstore.LabelPair
	pid     string
	hasPID  bool // gauges in the all modes
	v       float64
	ts      float64
	has     bool
	sum     float64
	buckets []bucket
}

// merge merges files (which it sorts by path) into sorted families.
func (m *merger) merge(files []mmapstore.FileSamples) []*dto.MetricFamily {
	m.gen++
	slices.SortFunc(files, func(a, b mmapstore.FileSamples) int { return cmp.Compare(a.Path, b.Path) })
	fams := make(map[string]*famAgg)
	for fi := range files {
		f := &files[fi]
		for si := range f.Samples {
			s := &f.Samples[si]
			if s.Key == nil {
				continue
			}
			fa := fams[s.Key.Family]
			if fa == nil {
				fa = &famAgg{family: s.Key.Family, typ: f.Type, mode: GaugeMode(f.Mode), help: s.Key.Help,
					series: make(map[seriesKey]*seriesAgg)}
				fams[s.Key.Family] = fa
			}
			if f.Type != fa.typ {
				continue // one name written as two types: the first file's type wins
			}
			m.add(fa, f.ID, m.info(s.Key), s)
		}
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, fa := range fams {
		if mf := fa.build(); mf != nil {
			out = append(out, mf)
		}
	}
	sortFamilies(out)
	out = dedupeFamilies(out)
	m.prune()
	return out
}

// prune forgets keys that were not seen in recent merges, so that the cache stays bounded
// even if the reader hands out new key pointers.
func (m *merger) prune() {
	if len(m.keys) < 4096 {
		return
	}
	used := 0
	for _, ki := range m.keys {
		if ki.seen == m.gen {
			used++
		}
	}
	if len(m.keys) <= 2*used {
		return
	}
	for k, ki := range m.keys {
		if ki.seen != m.gen {
			delete(m.keys, k)
		}
	}
}

func (m *merger) add(fa *famAgg, id string, ki *keyInfo, s *mmapstore.Sample) {
	sk := seriesKey{labels: ki.lkey}
	labels := ki.labels
	gauge := fa.typ == typeGauge
	allMode := gauge && fa.mode != GaugeMin && fa.mode != GaugeLiveMin && fa.mode != GaugeMax &&
		fa.mode != GaugeLiveMax && fa.mode != GaugeSum && fa.mode != GaugeLiveSum && !fa.mode.mostRecent()
	if gauge {
		if allMode {
			sk.pid = id
		}
		labels = withoutPID(labels)
	} else if hasPID(labels) {
		sk.labels = ki.lkey + "pid\x00" + pidOf(labels) // rare: a non-gauge with a pid label
	}
	var role int
	switch fa.typ {
	case typeCounter:
		if ki.sfx == "_total" {
			role = roleValue
		}
	case typeGauge:
		if ki.sfx == "" {
			role = roleValue
		}
	case typeSummary:
		switch ki.sfx {
		case "_count":
			role = roleValue
		case "_sum":
			role = roleSum
		}
	case typeHistogram:
		switch {
		case ki.sfx == "_bucket" && ki.hasLE:
			role = roleBucket
		case ki.sfx == "_sum":
			role = roleSum
		}
	}
	if role == roleNone {
		return
	}
	sa := fa.series[sk]
	if sa == nil {
		sa = &seriesAgg{labels: labels}
		if allMode {
			sa.pid, sa.hasPID = id, true
		}
		fa.series[sk] = sa
	}
	v := s.Value
	switch role {
	case roleSum:
		sa.sum += v
	case roleBucket:
		for i := range sa.buckets {
			if sa.buckets[i].le == ki.le {
				sa.buckets[i].n += v
				return
			}
		}
		sa.buckets = append(sa.buckets, bucket{ki.le, v})
	case roleValue:
		if !gauge {
			sa.v += v
			sa.has = true
			return
		}
		switch fa.mode {
		case GaugeMin, GaugeLiveMin:
			if !sa.has || v < sa.v {
				sa.v = v
			}
			sa.has = true
		case GaugeMax, GaugeLiveMax:
			if !sa.has || v > sa.v {
				sa.v = v
			}
			sa.has = true
		case GaugeSum, GaugeLiveSum:
			sa.v += v
			sa.has = true
		case GaugeMostRecent, GaugeLiveMostRecent:
			if s.Timestamp > sa.ts {
				sa.v, sa.ts, sa.has = v, s.Timestamp, true
			}
		default:
			sa.v, sa.has = v, true
		}
	}
}

const (
	roleNone = iota
	roleValue
	roleSum
	roleBucket
)

func hasPID(l []mmapstore.LabelPair) bool {
	for _, lp := range l {
		if lp.Name == "pid" {
			return true
		}
	}
	return false
}

func pidOf(l []mmapstore.LabelPair) string {
	for _, lp := range l {
		if lp.Name == "pid" {
			return lp.Value
		}
	}
	return ""
}

func withoutPID(l []mmapstore.LabelPair) []mmapstore.LabelPair {
	if !hasPID(l) {
		return l
	}
	out := make([]mmapstore.LabelPair, 0, len(l))
	for _, lp := range l {
		if lp.Name != "pid" {
			out = append(out, lp)
		}
	}
	return out
}

func (fa *famAgg) build() *dto.MetricFamily {
	name := fa.family
	mf := &dto.MetricFamily{Name: &name, Help: &fa.help}
	switch fa.typ {
	case typeCounter:
		name += "_total"
		mf.Type = dto.MetricType_COUNTER.Enum()
	case typeGauge:
		mf.Type = dto.MetricType_GAUGE.Enum()
	case typeSummary:
		mf.Type = dto.MetricType_SUMMARY.Enum()
	case typeHistogram:
		mf.Type = dto.MetricType_HISTOGRAM.Enum()
	default:
		return nil
	}
	metrics := make([]dto.Metric, len(fa.series))
	mf.Metric = make([]*dto.Metric, 0, len(fa.series))
	for _, sa := range fa.series {
		if fa.typ == typeGauge && !sa.has {
			continue // mostrecent, never set
		}
		m := &metrics[len(mf.Metric)]
		m.Label = labelPairs(sa)
		switch fa.typ {
		case typeCounter:
			m.Counter = &dto.Counter{Value: proto(sa.v)}
		case typeGauge:
			m.Gauge = &dto.Gauge{Value: proto(sa.v)}
		case typeSummary:
			m.Summary = &dto.Summary{SampleSum: proto(sa.sum)}
			setCount(sa.v, &m.Summary.SampleCount, nil)
		case typeHistogram:
			m.Histogram = histogram(sa)
		}
		mf.Metric = append(mf.Metric, m)
	}
	if len(mf.Metric) == 0 {
		return nil
	}
	sortMetrics(mf.Metric)
	return mf
}

func histogram(sa *seriesAgg) *dto.Histogram {
	h := &dto.Histogram{SampleSum: proto(sa.sum)}
	slices.SortFunc(sa.buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	acc := 0.0
	h.Bucket = make([]*dto.Bucket, 0, len(sa.buckets))
	bs := make([]dto.Bucket, len(sa.buckets))
	for i, b := range sa.buckets {
		acc += b.n
		if math.IsInf(b.le, 1) {
			continue // implied by the count
		}
		bs[i].UpperBound = proto(b.le)
		setCount(acc, &bs[i].CumulativeCount, &bs[i].CumulativeCountFloat)
		h.Bucket = append(h.Bucket, &bs[i])
	}
	setCount(acc, &h.SampleCount, &h.SampleCountFloat)
	return h
}

// setCount stores a merged count: as an integer when it is one (always, for what herd and
// Python write), else in the float field when there is one.
func setCount(v float64, u **uint64, f **float64) {
	if v >= 0 && v <= 1<<53 && v == math.Trunc(v) {
		n := uint64(v)
		*u = &n
		return
	}
	if f != nil {
		*f = proto(v)
		return
	}
	n := uint64(0)
	if v > 0 && !math.IsInf(v, 1) {
		n = uint64(math.Round(v))
	}
	*u = &n
}

func labelPairs(sa *seriesAgg) []*dto.LabelPair {
	n := len(sa.labels)
	if sa.hasPID {
		n++
	}
	if n == 0 {
		return nil
	}
	// Fresh strings, so that a caller modifying the result cannot reach the merger's cache.
	strs := make([]string, 0, 2*n)
	lps := make([]dto.LabelPair, n)
	out := make([]*dto.LabelPair, n)
	for i, lp := range sa.labels {
		strs = append(strs, lp.Name, lp.Value)
		lps[i].Name, lps[i].Value = &strs[2*i], &strs[2*i+1]
		out[i] = &lps[i]
	}
	if sa.hasPID {
		strs = append(strs, "pid", sa.pid)
		lps[n-1].Name, lps[n-1].Value = &strs[2*n-2], &strs[2*n-1]
		out[n-1] = &lps[n-1]
		slices.SortFunc(out, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
	}
	return out
}

func proto(v float64) *float64 { return &v }

func sortFamilies(fs []*dto.MetricFamily) {
	slices.SortStableFunc(fs, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
}

// dedupeFamilies drops all but the first of families with one name (sorted input).
func dedupeFamilies(fs []*dto.MetricFamily) []*dto.MetricFamily {
	return slices.CompactFunc(fs, func(a, b *dto.MetricFamily) bool { return a.GetName() == b.GetName() })
}

// sortMetrics orders series by their label pairs (names, then values, pair by pair).
func sortMetrics(ms []*dto.Metric) {
	slices.SortFunc(ms, func(a, b *dto.Metric) int {
		la, lb := a.GetLabel(), b.GetLabel()
		for i := 0; i < len(la) && i < len(lb); i++ {
			if c := cmp.Compare(la[i].GetName(), lb[i].GetName()); c != 0 {
				return c
			}
			if c := cmp.Compare(la[i].GetValue(), lb[i].GetValue()); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(la), len(lb))
	})
}
