package metrics

import (
	"cmp"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// build returns the family as merged in merge gen, or nil if it has no series. What it
// returns is freshly allocated (in a few batches), callers may keep or modify it, except the
// label pairs: as in client_golang, where a child's label pairs are made once and handed to
// every Write, each series' []*dto.LabelPair is made once and shared by every scrape, so
// callers must treat label pairs as read-only (nothing herd or client_golang does with
// gathered families writes to them).
func (fa *famAgg) build(gen uint64) *dto.MetricFamily {
	var typ dto.MetricType
	name := fa.name
	switch fa.typ {
	case typeCounter:
		typ = dto.MetricType_COUNTER
	case typeGauge:
		typ = dto.MetricType_GAUGE
	case typeSummary:
		typ = dto.MetricType_SUMMARY
	case typeHistogram:
		typ = dto.MetricType_HISTOGRAM
	default:
		return nil
	}
	fa.order()
	if fa.stale {
		fa.relayout()
		fa.stale = false
	}
	help := fa.help
	// Room for every series: all are usually current, and one pass over them is cheaper
	// than two (a scrape runs with the caches cold).
	n := len(fa.sorted)
	mf := &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum(), Metric: make([]*dto.Metric, n)}
	b := newBatch(n)
	i := 0
	for _, sa := range fa.sorted {
		if !fa.current(sa, gen) {
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
