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
	// type or mode, or pruning dropped something); file caches of another stamp are
	// resolved again.
	stamp   uint64
	touched []*famAgg   // families of the current merge, in order of first appearance
	slab    []seriesAgg // where new series are allocated
	// reserved lists the families of the last merge left out because they use the name
	// of one of the DirGatherer's own families.
	reserved []string
}

// fileCache is what the merger resolved for each entry of one file, by position. The
// reader only ever appends to a file's entries and says so with FileSamples.Seq, so in the
// steady state a sample costs an operation code and an addition into its series: no key
// comparison, no map lookup. The per-entry arrays are parallel, and only ops and sas are
// read for every sample (9 bytes an entry), to keep a scrape's memory traffic small.
type fileCache struct {
	gen   uint64 // the merge that last saw the file
	seq   uint64 // the FileSamples.Seq the entries were resolved for; 0: resolve every time
	stamp uint64 // the merger's stamp when they were resolved
	fams  []famRun
	ops   []op
	sas   []*seriesAgg // nil where ops is opNone
	kis   []*keyInfo   // for bucket bounds and for pruning
}

// famRun is a family the file holds, with the help text of its first entry there.
type famRun struct {
	fa   *famAgg
	help string
}

// op is what a sample does to its series.
type op uint8

const (
	opNone       op = iota
	opAdd           // v += value (counters, summary counts, sum gauges)
	opSum           // sum += value (histogram and summary sums)
	opBucket        // the bucket of the key's le += value
	opMin           // v = min(v, value)
	opMax           // v = max(v, value)
	opLast          // v = value (the all gauge modes: one series per file)
	opMostRecent    // v = value with the greatest timestamp
)

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
	// Hot: touched for every sample, and by build. First, so that they share one cache
	// line (series are allocated in slabs, in the order their keys first appear in a file,
	// so a steady merge walks them almost sequentially).
	gen    uint64 // the merge that last touched it; older values are stale
	v      float64
	ts     float64
	sum    float64
	has    bool
	labels []*dto.LabelPair // out as exposed, shared by every scrape (len == cap); see relayout

	buckets []bucket
	out     []mmapstore.LabelPair // output labels, sorted (with pid in the all modes)
	sortKey string
}

// newSeries returns a zero seriesAgg from the merger's current slab.
func (m *merger) newSeries() *seriesAgg {
	if len(m.slab) == 0 {
		m.slab = make([]seriesAgg, 256)
	}
	sa := &m.slab[0]
	m.slab = m.slab[1:]
	return sa
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
func (fa *famAgg) slot(m *merger, ki *keyInfo, id string) *seriesAgg {
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
		sa = m.newSeries()
		sa.out = out
		var b strings.Builder
		for _, lp := range out {
			writeLabel(&b, lp)
		}
		sa.sortKey = b.String() // sa.labels are made by relayout, as the family is now dirty
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
	byPath := func(a, b mmapstore.FileSamples) int { return cmp.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(files, byPath) {
		slices.SortFunc(files, byPath)
	}
	m.begin()
	for i := range files {
		m.addFile(&files[i])
	}
	return m.finish()
}

// begin starts a merge; addFile is then called for every file in path order, and finish
// returns the result.
func (m *merger) begin() {
	m.gen++
	m.touched = m.touched[:0]
}

// addFile merges one file's samples. f is not kept.
func (m *merger) addFile(f *mmapstore.FileSamples) {
	fc := m.files[f.Path]
	if fc == nil {
		fc = &fileCache{}
		m.files[f.Path] = fc
	}
	fc.gen = m.gen
	valid := f.Seq != 0 && fc.seq == f.Seq && fc.stamp == m.stamp
	if valid {
		for _, r := range fc.fams {
			m.touch(r.fa, f, r.help) // may change the stamp
		}
		valid = fc.stamp == m.stamp
	}
	if !valid {
		clear(fc.fams) // drop the references before the arrays are refilled
		clear(fc.sas)
		clear(fc.kis)
		fc.seq, fc.fams = f.Seq, fc.fams[:0]
		fc.ops, fc.sas, fc.kis = fc.ops[:0], fc.sas[:0], fc.kis[:0]
	}
	if len(fc.ops) < len(f.Samples) {
		m.resolve(fc, f)
	}
	n := len(f.Samples)
	ops, sas, kis, samples := fc.ops[:n], fc.sas[:n], fc.kis[:n], f.Samples[:n]
	gen := m.gen
	for i, o := range ops {
		if o == opNone {
			continue
		}
		sa, s := sas[i], &samples[i]
		if sa.gen != gen {
			sa.gen, sa.v, sa.ts, sa.has, sa.sum, sa.buckets = gen, 0, 0, false, 0, sa.buckets[:0]
		}
		v := s.Value
		switch o {
		case opAdd:
			sa.v += v
			sa.has = true
		case opSum:
			sa.sum += v
		case opBucket:
			sa.addBucket(kis[i].le, v)
		case opMin:
			if !sa.has || v < sa.v {
				sa.v = v
			}
			sa.has = true
		case opMax:
			if !sa.has || v > sa.v {
				sa.v = v
			}
			sa.has = true
		case opLast:
			sa.v, sa.has = v, true
		case opMostRecent:
			if s.Timestamp > sa.ts { // a gauge never set (timestamp 0) yields nothing
				sa.v, sa.ts, sa.has = v, s.Timestamp, true
			}
		}
	}
}

func (sa *seriesAgg) addBucket(le, v float64) {
	for i := range sa.buckets {
		if sa.buckets[i].le == le {
			sa.buckets[i].n += v
			return
		}
	}
	sa.buckets = append(sa.buckets, bucket{le, v})
}

// finish builds the families of the merge and forgets what was not seen lately.
func (m *merger) finish() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m.touched))
	m.reserved = m.reserved[:0]
	for _, fa := range m.touched {
		if selfFamily(fa.family) {
			m.reserved = append(m.reserved, fa.family)
			continue
		}
		if mf := fa.build(m.gen); mf != nil {
			out = append(out, mf)
		}
	}
	clear(m.touched)
	m.touched = m.touched[:0]
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
func (m *merger) touch(fa *famAgg, f *mmapstore.FileSamples, help string) {
	if fa.gen == m.gen {
		return
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
	m.touched = append(m.touched, fa)
}

// resolve finds (creating as needed) the family, key information, operation and series
// slot of the entries of f that fc has not resolved yet, and appends them to fc.
func (m *merger) resolve(fc *fileCache, f *mmapstore.FileSamples) {
	var cur *famAgg // the family of the previous entry: files hold families in runs
	for _, s := range f.Samples[len(fc.ops):] {
		k := s.Key
		if k == nil {
			fc.ops, fc.sas, fc.kis = append(fc.ops, opNone), append(fc.sas, nil), append(fc.kis, nil)
			continue
		}
		if cur == nil || cur.family != k.Family {
			cur = m.fams[k.Family]
			if cur == nil {
				cur = &famAgg{family: k.Family, series: make(map[seriesKey]*seriesAgg)}
				m.fams[k.Family] = cur
			}
			m.touch(cur, f, k.Help)
			if !slices.ContainsFunc(fc.fams, func(r famRun) bool { return r.fa == cur }) {
				fc.fams = append(fc.fams, famRun{cur, k.Help})
			}
		}
		ki := m.keys[k]
		if ki == nil {
			ki = deriveKey(k)
			m.keys[k] = ki
		}
		ki.seen = m.gen
		o, sa := opNone, (*seriesAgg)(nil)
		if f.Type == cur.typ { // else one name written as two types: the first file's type wins
			if o = opFor(cur, role(cur.typ, ki)); o != opNone {
				sa = cur.slot(m, ki, f.ID)
			}
		}
		fc.ops, fc.sas, fc.kis = append(fc.ops, o), append(fc.sas, sa), append(fc.kis, ki)
	}
	fc.stamp = m.stamp
}

// opFor returns the operation of a sample of the given role in family fa.
func opFor(fa *famAgg, r int) op {
	switch r {
	case roleSum:
		return opSum
	case roleBucket:
		return opBucket
	case roleValue:
		if fa.typ != typeGauge {
			return opAdd
		}
		switch fa.mode {
		case GaugeMin, GaugeLiveMin:
			return opMin
		case GaugeMax, GaugeLiveMax:
			return opMax
		case GaugeSum, GaugeLiveSum:
			return opAdd
		case GaugeMostRecent, GaugeLiveMostRecent:
			return opMostRecent
		}
		return opLast
	}
	return opNone
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

// prune forgets keys, series and families not seen lately, so that memory stays bounded
// when series or files come and go.
func (m *merger) prune() {
	if m.gen%64 != 0 {
		return
	}
	// Keys still cached for a file are in use even if no entry was resolved lately.
	for _, fc := range m.files {
		for _, ki := range fc.kis {
			if ki != nil {
				ki.seen = m.gen
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

// build returns the family as merged in merge gen, or nil if it has no series. What it
// returns is freshly allocated (in a few batches), callers may keep or modify it, except the
// label pairs: as in client_golang, where a child's label pairs are made once and handed to
// every Write, each series' []*dto.LabelPair is made once and shared by every scrape, so
// callers must treat label pairs as read-only (nothing herd or client_golang does with
// gathered families writes to them).
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
		fa.relayout()
		fa.dirty = false
	}
	help := fa.help
	// Room for every series: all are usually current, and one pass over them is cheaper
	// than two (a scrape runs with the caches cold).
	n := len(fa.sorted)
	mf := &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum(), Metric: make([]*dto.Metric, n)}
	b := newBatch(n)
	i := 0
	for _, sa := range fa.sorted {
		if sa.gen != gen || (fa.typ == typeGauge && !sa.has) {
			continue
		}
		m := b.metrics.next()
		m.Label = sa.labels
		switch fa.typ {
		case typeCounter:
			c := b.counters.next()
			c.Value = b.float(sa.v)
			m.Counter = c
		case typeGauge:
			g := b.gauges.next()
			g.Value = b.float(sa.v)
			m.Gauge = g
		case typeSummary:
			sm := b.summaries.next()
			sm.SampleSum = b.float(sa.sum)
			sm.SampleCount, _ = b.count(sa.v, false)
			m.Summary = sm
		case typeHistogram:
			m.Histogram = b.histogram(sa)
		}
		mf.Metric[i] = m
		i++
	}
	if i == 0 {
		return nil
	}
	mf.Metric = mf.Metric[:i:i]
	return mf
}

// batch allocates one family's output: objects come from small arrays (chunks of about
// 16 KiB) rather than one allocation each, and small enough that each chunk is zeroed and
// filled while it is in the CPU cache (one large array per type would be zeroed, fall out
// of the cache, and be read in again to be filled).
type batch struct {
	metrics    chunks[dto.Metric]
	counters   chunks[dto.Counter]
	gauges     chunks[dto.Gauge]
	summaries  chunks[dto.Summary]
	histograms chunks[dto.Histogram]
	buckets    chunks[dto.Bucket]
	floats     chunks[float64]
	uints      chunks[uint64]
	bucketPtrs []*dto.Bucket // h.Bucket slices are cut from it
}

// chunks hands out zeroed T one by one from arrays of at most per elements, and no more
// than left in all unless asked for more.
type chunks[T any] struct {
	free []T
	per  int
	left int
}

func (c *chunks[T]) next() *T {
	if len(c.free) == 0 {
		k := min(c.per, max(c.left, 1))
		c.free = make([]T, k)
		c.left -= k
	}
	p := &c.free[0]
	c.free = c.free[1:]
	return p
}

func newChunks[T any](per, total int) chunks[T] { return chunks[T]{per: per, left: total} }

// newBatch returns a batch for up to n series.
func newBatch(n int) *batch {
	return &batch{
		metrics:    newChunks[dto.Metric](128, n),
		counters:   newChunks[dto.Counter](256, n),
		gauges:     newChunks[dto.Gauge](256, n),
		summaries:  newChunks[dto.Summary](128, n),
		histograms: newChunks[dto.Histogram](128, n),
		buckets:    newChunks[dto.Bucket](256, 1<<30),
		floats:     newChunks[float64](2048, 1<<30),
		uints:      newChunks[uint64](2048, 1<<30),
	}
}

// count stores a merged count: as an integer when it is one (always, for what herd and Python
// write), else, when asked for, as a float; a float count without a float field is rounded.
func (b *batch) count(v float64, float bool) (*uint64, *float64) {
	if v >= 0 && v <= 1<<53 && v == math.Trunc(v) {
		return b.uint(uint64(v)), nil
	}
	if float {
		return nil, b.float(v)
	}
	n := uint64(0)
	if v > 0 && !math.IsInf(v, 1) {
		n = uint64(math.Round(v))
	}
	return b.uint(n), nil
}

func (b *batch) uint(v uint64) *uint64 {
	p := b.uints.next()
	*p = v
	return p
}

func (b *batch) float(v float64) *float64 {
	p := b.floats.next()
	*p = v
	return p
}

// histogram returns the histogram of sa with cumulative buckets.
func (b *batch) histogram(sa *seriesAgg) *dto.Histogram {
	if !slices.IsSortedFunc(sa.buckets, cmpBucket) {
		slices.SortFunc(sa.buckets, cmpBucket)
	}
	h := b.histograms.next()
	h.SampleSum = b.float(sa.sum)
	if cap(b.bucketPtrs)-len(b.bucketPtrs) < len(sa.buckets) {
		b.bucketPtrs = make([]*dto.Bucket, 0, max(len(sa.buckets), 1024))
	}
	start := len(b.bucketPtrs)
	acc := 0.0
	for _, bk := range sa.buckets {
		acc += bk.n
		if math.IsInf(bk.le, 1) {
			continue // implied by the count
		}
		db := b.buckets.next()
		db.UpperBound = b.float(bk.le)
		db.CumulativeCount, db.CumulativeCountFloat = b.count(acc, true)
		b.bucketPtrs = append(b.bucketPtrs, db)
	}
	h.Bucket = b.bucketPtrs[start:len(b.bucketPtrs):len(b.bucketPtrs)]
	h.SampleCount, h.SampleCountFloat = b.count(acc, true)
	return h
}

// relayout makes the exposed label pairs of every series anew, in output order and in a few
// contiguous arrays (label names shared, values copied into one string), so that building and
// encoding a scrape read them sequentially instead of chasing pointers all over the heap.
// Label pairs made earlier stay valid for whoever still holds them: they are never written.
func (fa *famAgg) relayout() {
	n, size := 0, 0
	for _, sa := range fa.sorted {
		n += len(sa.out)
		for _, lp := range sa.out {
			size += len(lp.Value)
		}
	}
	if n == 0 {
		for _, sa := range fa.sorted {
			sa.labels = nil
		}
		return
	}
	var b strings.Builder
	b.Grow(size)
	for _, sa := range fa.sorted {
		for _, lp := range sa.out {
			b.WriteString(lp.Value)
		}
	}
	all := b.String()
	names := make(map[string]*string)
	strs := make([]string, 0, n)
	lps := make([]dto.LabelPair, n)
	ptrs := make([]*dto.LabelPair, n)
	i, off := 0, 0
	for _, sa := range fa.sorted {
		start := i
		for _, lp := range sa.out {
			name := names[lp.Name]
			if name == nil {
				name = new(string)
				*name = lp.Name
				names[lp.Name] = name
			}
			strs = append(strs, all[off:off+len(lp.Value)])
			off += len(lp.Value)
			lps[i] = dto.LabelPair{Name: name, Value: &strs[len(strs)-1]}
			ptrs[i] = &lps[i]
			i++
		}
		sa.labels = nil
		if i > start {
			sa.labels = ptrs[start:i:i]
		}
	}
}

func cmpBucket(a, b bucket) int { return cmp.Compare(a.le, b.le) }

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
