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
//
// A scrape must cost little however many workers there are, so the merger keeps its work
// between scrapes: what it derives from a key (the reader interns keys, so a *Key pointer
// identifies one), the aggregation slot of every series, and for every file, by entry
// position, the key, role and slot resolved there. A steady-state scrape compares one
// pointer and does an addition per sample (no map lookup, no label string), then builds the
// output in one batch per family, in an order sorted only when series were added.

// keyInfo is what the merge derives from one key.
type keyInfo struct {
	sfx       string                // the sample name after the family name: "_total", "_sum", "", ...
	le        float64               // the "le" label as a float, when hasLE
	hasLE     bool                  // the key has a parsable "le" label
	labels    []mmapstore.LabelPair // sorted, without "le"
	noPID     []mmapstore.LabelPair // labels without "pid" (gauges)
	lkey      string                // labels encoded as one string (a map key)
	lkeyNoPID string                // noPID encoded
	seen      uint64                // generation of the last merge that used it

	// The series slot of this key, cached for the family state it was resolved under.
	fa    *famAgg
	epoch uint64
	kind  seriesKind
	sa    *seriesAgg
	byID  map[string]*seriesAgg // kindPerFile: one slot per file id
}

type seriesKind uint8

const (
	kindNone    seriesKind = iota
	kindLabels             // counters, summaries, histograms: all labels but le
	kindNoPID              // gauges merged over processes: pid dropped
	kindPerFile            // gauges in the all modes: one series per file id
)

// merger merges scanned files into metric families. Not safe for concurrent use.
type merger struct {
	keys  map[*mmapstore.Key]*keyInfo
	fams  map[string]*famAgg
	files map[string]*fileCache // by path
	gen   uint64
	// stamp changes whenever a cached series slot may have become invalid (a family changed
	// type or mode, or pruning dropped something); fileEnts of another stamp are resolved
	// again.
	stamp   uint64
	touched []*famAgg // reused by merge
}

// fileCache is what the merger resolved for each entry of one file, by position: the
// reader keeps a file's entries in order and only appends, so in the steady state the key
// at a position is the one resolved last time, and a sample costs a pointer comparison and
// an addition into its series, with no map lookup.
type fileCache struct {
	gen  uint64 // the merge that last saw the file
	ents []fileEnt
}

type fileEnt struct {
	key   *mmapstore.Key // the key resolved; a different one at this position: resolve again
	stamp uint64         // the merger's stamp when resolved
	ki    *keyInfo
	fa    *famAgg
	sa    *seriesAgg // nil when role is roleNone
	role  int
}

func newMerger() *merger {
	return &merger{keys: make(map[*mmapstore.Key]*keyInfo), fams: make(map[string]*famAgg),
		files: make(map[string]*fileCache), stamp: 1}
}

type famAgg struct {
	family string // as in the files
	gen    uint64 // the merge that last saw it
	typ    string
	mode   GaugeMode
	help   string
	series map[seriesKey]*seriesAgg
	sorted []*seriesAgg // every series, sorted by labels when !dirty
	dirty  bool
	epoch  uint64 // bumped when series slots are dropped: keyInfo caches of older epochs are stale
}

type seriesKey struct {
	labels string
	pid    string
}

type bucket struct{ le, n float64 }

type seriesAgg struct {
	out     []mmapstore.LabelPair // output labels, sorted (with pid in the all modes)
	sortKey string
	gen     uint64 // the merge that last touched it; older values are stale
	v       float64
	ts      float64
	has     bool
	sum     float64
	buckets []bucket
}

func deriveKey(k *mmapstore.Key) *keyInfo {
	ki := &keyInfo{sfx: "\x00" + k.Sample} // a sample not named after its family has no role
	if s, ok := strings.CutPrefix(k.Sample, k.Family); ok {
		ki.sfx = s
	}
	var all, noPID strings.Builder
	for _, lp := range k.Labels {
		if lp.Name == "le" {
			if f, err := strconv.ParseFloat(lp.Value, 64); err == nil {
				ki.le, ki.hasLE = f, true
			}
			continue
		}
		ki.labels = append(ki.labels, lp)
		writeLabel(&all, lp)
		if lp.Name != "pid" {
			ki.noPID = append(ki.noPID, lp)
			writeLabel(&noPID, lp)
		}
	}
	ki.lkey, ki.lkeyNoPID = all.String(), noPID.String()
	return ki
}

func writeLabel(b *strings.Builder, lp mmapstore.LabelPair) {
	b.WriteString(lp.Name)
	b.WriteByte(0)
	b.WriteString(lp.Value)
	b.WriteByte(1)
}

func (fa *famAgg) kindFor() seriesKind {
	if fa.typ != typeGauge {
		return kindLabels
	}
	switch fa.mode {
	case GaugeMin, GaugeLiveMin, GaugeMax, GaugeLiveMax, GaugeSum, GaugeLiveSum, GaugeMostRecent, GaugeLiveMostRecent:
		return kindNoPID
	}
	return kindPerFile // all, liveall (and, as in Python, anything unknown)
}

// slot returns the aggregation slot of sample key ki from the file with id.
func (fa *famAgg) slot(ki *keyInfo, id string) *seriesAgg {
	kind := fa.kindFor()
	if ki.fa != fa || ki.epoch != fa.epoch || ki.kind != kind {
		ki.fa, ki.epoch, ki.kind, ki.sa, ki.byID = fa, fa.epoch, kind, nil, nil
	}
	if kind != kindPerFile && ki.sa != nil {
		return ki.sa
	}
	if kind == kindPerFile {
		if sa := ki.byID[id]; sa != nil {
			return sa
		}
	}
	sk := seriesKey{labels: ki.lkey}
	out := ki.labels
	switch kind {
	case kindNoPID:
		sk.labels, out = ki.lkeyNoPID, ki.noPID
	case kindPerFile:
		sk = seriesKey{labels: ki.lkeyNoPID, pid: id}
		out = append(slices.Clone(ki.noPID), mmapstore.LabelPair{Name: "pid", Value: id})
		slices.SortFunc(out, func(a, b mmapstore.LabelPair) int { return cmp.Compare(a.Name, b.Name) })
	}
	sa := fa.series[sk]
	if sa == nil {
		sa = &seriesAgg{out: out}
		var b strings.Builder
		for _, lp := range out {
			writeLabel(&b, lp)
		}
		sa.sortKey = b.String()
		fa.series[sk] = sa
		fa.sorted = append(fa.sorted, sa)
		fa.dirty = true
	}
	if kind == kindPerFile {
		if ki.byID == nil {
			ki.byID = make(map[string]*seriesAgg)
		}
		ki.byID[id] = sa
	} else {
		ki.sa = sa
	}
	return sa
}

// merge merges files (which it sorts by path) into sorted families.
func (m *merger) merge(files []mmapstore.FileSamples) []*dto.MetricFamily {
	m.gen++
	byPath := func(a, b mmapstore.FileSamples) int { return cmp.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(files, byPath) {
		slices.SortFunc(files, byPath)
	}
	touched := m.touched[:0]
	for fi := range files {
		f := &files[fi]
		fc := m.files[f.Path]
		if fc == nil {
			fc = &fileCache{}
			m.files[f.Path] = fc
		}
		fc.gen = m.gen
		if len(fc.ents) < len(f.Samples) {
			fc.ents = slices.Grow(fc.ents, len(f.Samples)-len(fc.ents))[:len(f.Samples)]
		}
		var cur *famAgg // the family of the previous sample: files hold families in runs
		for si := range f.Samples {
			s := &f.Samples[si]
			if s.Key == nil {
				continue
			}
			e := &fc.ents[si]
			if e.key == s.Key && e.stamp == m.stamp && e.fa != cur {
				cur = e.fa
				touched = m.touch(cur, f, s.Key.Help, touched) // may change the stamp
			}
			if e.key != s.Key || e.stamp != m.stamp {
				touched = m.resolve(e, f, s.Key, touched)
				cur = e.fa
			}
			if e.role != roleNone {
				m.add(e, s)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(touched))
	for _, fa := range touched {
		if mf := fa.build(m.gen); mf != nil {
			out = append(out, mf)
		}
	}
	clear(touched)
	m.touched = touched[:0]
	for path, fc := range m.files {
		if fc.gen != m.gen {
			delete(m.files, path)
		}
	}
	sortFamilies(out)
	out = dedupeFamilies(out)
	m.prune()
	return out
}

// touch makes this merge's first file holding family fa decide its type, mode and help.
func (m *merger) touch(fa *famAgg, f *mmapstore.FileSamples, help string, touched []*famAgg) []*famAgg {
	if fa.gen == m.gen {
		return touched
	}
	if fa.typ != f.Type || fa.mode != GaugeMode(f.Mode) {
		// New, or its first file now says another type or mode: the series slots of the
		// old one do not apply.
		clear(fa.series)
		fa.sorted = fa.sorted[:0]
		fa.epoch++
		m.stamp++
	}
	fa.gen, fa.typ, fa.mode, fa.help = m.gen, f.Type, GaugeMode(f.Mode), help
	return append(touched, fa)
}

// resolve finds (creating as needed) the family, key information, role and series slot of
// key k from file f, and caches them in e.
func (m *merger) resolve(e *fileEnt, f *mmapstore.FileSamples, k *mmapstore.Key, touched []*famAgg) []*famAgg {
	fa := m.fams[k.Family]
	if fa == nil {
		fa = &famAgg{family: k.Family, series: make(map[seriesKey]*seriesAgg)}
		m.fams[k.Family] = fa
	}
	touched = m.touch(fa, f, k.Help, touched)
	ki := m.keys[k]
	if ki == nil {
		ki = deriveKey(k)
		m.keys[k] = ki
	}
	ki.seen = m.gen
	*e = fileEnt{key: k, stamp: m.stamp, ki: ki, fa: fa}
	if f.Type != fa.typ {
		return touched // one name written as two types: the first file's type wins
	}
	e.role = role(fa.typ, ki)
	if e.role != roleNone {
		e.sa = fa.slot(ki, f.ID)
	}
	return touched
}

// role of a sample within its family's type.
const (
	roleNone = iota
	roleValue
	roleSum
	roleBucket
)

func role(typ string, ki *keyInfo) int {
	switch typ {
	case typeCounter:
		if ki.sfx == "_total" {
			return roleValue
		}
	case typeGauge:
		if ki.sfx == "" {
			return roleValue
		}
	case typeSummary:
		switch ki.sfx {
		case "_count":
			return roleValue
		case "_sum":
			return roleSum
		}
	case typeHistogram:
		switch {
		case ki.sfx == "_bucket" && ki.hasLE:
			return roleBucket
		case ki.sfx == "_sum":
			return roleSum
		}
	}
	return roleNone
}

func (m *merger) add(e *fileEnt, s *mmapstore.Sample) {
	sa := e.sa
	if sa.gen != m.gen {
		sa.gen, sa.v, sa.ts, sa.has, sa.sum, sa.buckets = m.gen, 0, 0, false, 0, sa.buckets[:0]
	}
	v := s.Value
	switch e.role {
	case roleSum:
		sa.sum += v
	case roleBucket:
		le := e.ki.le
		for i := range sa.buckets {
			if sa.buckets[i].le == le {
				sa.buckets[i].n += v
				return
			}
		}
		sa.buckets = append(sa.buckets, bucket{le, v})
	case roleValue:
		fa := e.fa
		if fa.typ != typeGauge {
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
			if s.Timestamp > sa.ts { // a gauge never set (timestamp 0) yields nothing
				sa.v, sa.ts, sa.has = v, s.Timestamp, true
			}
		default:
			sa.v, sa.has = v, true
		}
	}
}

// prune forgets keys, series and families not seen lately, so that memory stays bounded
// when series or files come and go.
func (m *merger) prune() {
	if m.gen%64 != 0 {
		return
	}
	// Keys still cached for a file are in use even if no entry was resolved lately.
	for _, fc := range m.files {
		for _, e := range fc.ents {
			if e.ki != nil {
				e.ki.seen = m.gen
			}
		}
	}
	for k, ki := range m.keys {
		if m.gen-ki.seen > 64 {
			delete(m.keys, k)
		}
	}
	for name, fa := range m.fams {
		if m.gen-fa.gen > 64 {
			delete(m.fams, name)
			m.stamp++
			continue
		}
		stale := false
		for sk, sa := range fa.series {
			if m.gen-sa.gen > 64 {
				delete(fa.series, sk)
				stale = true
			}
		}
		if stale {
			fa.sorted = slices.DeleteFunc(fa.sorted, func(sa *seriesAgg) bool { return m.gen-sa.gen > 64 })
			fa.epoch++ // cached slots may point at deleted series
			m.stamp++
		}
	}
}

// build returns the family as merged in merge gen, or nil if it has no series. Everything
// it returns is freshly allocated (in a few batches): callers may keep or modify it.
func (fa *famAgg) build(gen uint64) *dto.MetricFamily {
	var typ dto.MetricType
	name := fa.family
	switch fa.typ {
	case typeCounter:
		typ, name = dto.MetricType_COUNTER, name+"_total"
	case typeGauge:
		typ = dto.MetricType_GAUGE
	case typeSummary:
		typ = dto.MetricType_SUMMARY
	case typeHistogram:
		typ = dto.MetricType_HISTOGRAM
	default:
		return nil
	}
	if fa.dirty {
		slices.SortFunc(fa.sorted, func(a, b *seriesAgg) int { return strings.Compare(a.sortKey, b.sortKey) })
		fa.dirty = false
	}
	n, nl := 0, 0
	for _, sa := range fa.sorted {
		if sa.gen == gen && (fa.typ != typeGauge || sa.has) {
			n++
			nl += len(sa.out)
		}
	}
	if n == 0 {
		return nil
	}
	help := fa.help
	mf := &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum(), Metric: make([]*dto.Metric, 0, n)}
	metrics := make([]dto.Metric, n)
	values := make([]float64, 0, n)
	strs := make([]string, 0, 2*nl)
	lps := make([]dto.LabelPair, 0, nl)
	lpps := make([]*dto.LabelPair, 0, nl)
	var counters []dto.Counter
	var gauges []dto.Gauge
	switch fa.typ {
	case typeCounter:
		counters = make([]dto.Counter, n)
	case typeGauge:
		gauges = make([]dto.Gauge, n)
	}
	for _, sa := range fa.sorted {
		if sa.gen != gen || (fa.typ == typeGauge && !sa.has) {
			continue
		}
		i := len(mf.Metric)
		m := &metrics[i]
		start := len(lpps)
		for _, lp := range sa.out {
			strs = append(strs, lp.Name, lp.Value)
			lps = append(lps, dto.LabelPair{Name: &strs[len(strs)-2], Value: &strs[len(strs)-1]})
			lpps = append(lpps, &lps[len(lps)-1])
		}
		if len(sa.out) > 0 {
			m.Label = lpps[start:len(lpps):len(lpps)]
		}
		switch fa.typ {
		case typeCounter:
			values = append(values, sa.v)
			counters[i].Value = &values[len(values)-1]
			m.Counter = &counters[i]
		case typeGauge:
			values = append(values, sa.v)
			gauges[i].Value = &values[len(values)-1]
			m.Gauge = &gauges[i]
		case typeSummary:
			m.Summary = &dto.Summary{SampleSum: proto(sa.sum)}
			setCount(sa.v, &m.Summary.SampleCount, nil)
		case typeHistogram:
			m.Histogram = histogram(sa)
		}
		mf.Metric = append(mf.Metric, m)
	}
	return mf
}

func histogram(sa *seriesAgg) *dto.Histogram {
	h := &dto.Histogram{SampleSum: proto(sa.sum)}
	if !slices.IsSortedFunc(sa.buckets, cmpBucket) {
		slices.SortFunc(sa.buckets, cmpBucket)
	}
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

func cmpBucket(a, b bucket) int { return cmp.Compare(a.le, b.le) }

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
