package metrics

import (
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/herdhttp/herd/internal/expo"
	"github.com/prometheus/common/model"
)

// The fast renderer writes the text format 0.0.4 and OpenMetrics 1.0 straight from the
// merger's state, byte for byte what expfmt writes for the families build returns, without
// making those families: each family's HELP and TYPE lines and each series' label text are
// rendered once and kept across scrapes, so a scrape only formats values. What it does not
// write exactly as expfmt (names outside the legacy rules, which expfmt quotes or escapes;
// in OpenMetrics, histogram counts that are no integer, which expfmt refuses) it declines,
// and the caller encodes that family through build and expfmt.

// labelText is a series' label pairs rendered once: `a="x",b="y"`.
type labelText struct {
	s    string
	done bool
	odd  bool // a label name the renderer does not write as expfmt would
}

// heads are a family's HELP and TYPE lines in both formats, made for one help and type.
type heads struct {
	help, typ, name string
	text, om        []byte
	odd             bool // the name is not a legacy metric name
}

// labelText returns the series' rendered label pairs, making them the first time.
func (sa *seriesAgg) labelText() *labelText {
	if !sa.text.done {
		sa.setLabelText(string(sa.appendLabels(nil)))
	}
	return &sa.text
}

// appendLabels appends the series' label pairs as rendered.
func (sa *seriesAgg) appendLabels(b []byte) []byte {
	for i, lp := range sa.out {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, lp.Name...)
		b = append(b, '=', '"')
		b = expo.AppendEscaped(b, lp.Value, true)
		b = append(b, '"')
	}
	return b
}

// setLabelText sets the series' rendered label pairs to s.
func (sa *seriesAgg) setLabelText(s string) {
	sa.text = labelText{s: s, done: true}
	for _, lp := range sa.out {
		if lp.Name == model.MetricNameLabel || !model.LegacyValidation.IsValidLabelName(lp.Name) {
			sa.text.odd = true
		}
	}
}

// labelScratch is the buffers labelTexts reuses.
type labelScratch struct {
	sas  []*seriesAgg
	ends []int
}

// labelTexts renders the label pairs of the family's series that have none yet, all into
// one new string: a first scrape makes the texts of every series at once, and so allocates
// their size once, not the doublings of a growing buffer and a copy.
func (fa *famAgg) labelTexts(sc *labelScratch) {
	fa.textsDue = false
	sas, n := sc.sas[:0], 0
	for _, sa := range fa.sorted {
		if !sa.text.done {
			sas, n = append(sas, sa), n+sa.labelsLen()
		}
	}
	b, ends := make([]byte, 0, n), sc.ends[:0]
	for _, sa := range sas {
		b = sa.appendLabels(b)
		ends = append(ends, len(b))
	}
	// b is never written again: the string shares its bytes, as strings.Builder's does.
	all, start := unsafe.String(unsafe.SliceData(b), len(b)), 0
	for i, sa := range sas {
		sa.setLabelText(all[start:ends[i]])
		start = ends[i]
	}
	clear(sas)
	sc.sas, sc.ends = sas[:0], ends[:0]
}

// labelsLen is the length of the series' label text when no value needs an escape.
func (sa *seriesAgg) labelsLen() int {
	n := 0
	for _, lp := range sa.out {
		n += len(lp.Name) + len(lp.Value) + 4 // =".." and a comma
	}
	return n
}

// head returns the family's rendered HELP and TYPE lines.
func (fa *famAgg) head() *heads {
	h := &fa.heads
	if h.text != nil && h.help == fa.help && h.typ == fa.typ && h.name == fa.name {
		return h
	}
	h.help, h.typ, h.name = fa.help, fa.typ, fa.name
	h.odd = !model.LegacyValidation.IsValidMetricName(fa.name)
	// Text: the exposed name throughout; help escapes backslash and newline.
	t := append(h.text[:0], "# HELP "...)
	t = append(t, fa.name...)
	t = append(t, ' ')
	t = expo.AppendEscaped(t, fa.help, false)
	t = append(t, "\n# TYPE "...)
	t = append(t, fa.name...)
	t = append(t, ' ')
	t = append(t, fa.typ...)
	h.text = append(t, '\n')
	// OpenMetrics: a counter's family name without _total; help escapes quotes too.
	name := fa.name
	if fa.typ == typeCounter {
		name = fa.family
	}
	o := append(h.om[:0], "# HELP "...)
	o = append(o, name...)
	o = append(o, ' ')
	o = expo.AppendEscaped(o, fa.help, true)
	o = append(o, "\n# TYPE "...)
	o = append(o, name...)
	o = append(o, ' ')
	o = append(o, fa.typ...)
	h.om = append(o, '\n')
	return h
}

// leTexts caches the rendered "le" label values of histogram bounds: by float bits, and by
// position for the series just rendered (consecutive series usually have the same bounds).
type leTexts struct {
	bounds expo.Bounds
	last   []leText
	// labels is labelTexts' scratch: the render caches of one gatherer share it.
	labels labelScratch
}

type leText struct {
	bits uint64
	t    *[2]string
}

// get returns the rendered bound le of the j-th bucket of a series.
func (c *leTexts) get(j int, le float64, om bool) string {
	bits := math.Float64bits(le)
	if j >= len(c.last) {
		c.last = append(c.last, make([]leText, j+1-len(c.last))...)
	}
	t := c.last[j].t
	if t == nil || c.last[j].bits != bits {
		t = c.bounds.Texts(le)
		c.last[j] = leText{bits, t}
	}
	if om {
		return t[1]
	}
	return t[0]
}

// render appends the family's exposition of merge gen to b, in OpenMetrics if om, else in
// the text format. It returns false, and b as it was, for a family only expfmt writes
// exactly (see above).
func (fa *famAgg) render(b []byte, gen uint64, om bool, les *leTexts) ([]byte, bool) {
	fa.order()
	h := fa.head()
	if h.odd {
		return b, false
	}
	if fa.textsDue {
		fa.labelTexts(&les.labels)
	}
	start := len(b)
	if om {
		b = append(b, h.om...)
	} else {
		b = append(b, h.text...)
	}
	name := fa.name
	if n := len(fa.sorted); n > 0 && fa.typ != typeHistogram {
		// Room for the family at once (a first scrape, whose buffer is new), estimated from
		// its first series: growing by doubling would copy it all again and again.
		if need := n * (len(name) + len(fa.sorted[0].labelText().s) + 24); cap(b)-len(b) < need {
			b = slices.Grow(b, need)
		}
	}
	for _, sa := range fa.sorted {
		if !fa.current(sa, gen) {
			continue
		}
		lt := sa.labelText()
		if lt.odd {
			return b[:start], false
		}
		switch fa.typ {
		case typeCounter, typeGauge:
			b = expo.AppendSeries(b, name, "", lt.s)
			b = expo.AppendFloat(b, sa.v, om)
		case typeSummary:
			b = expo.AppendSeries(b, name, "_sum", lt.s)
			b = append(expo.AppendFloat(b, sa.sum, om), '\n')
			b = expo.AppendSeries(b, name, "_count", lt.s)
			if n := summaryCount(sa.v); om {
				b = strconv.AppendUint(b, n, 10)
			} else {
				b = expo.AppendFloat(b, float64(n), false)
			}
		case typeHistogram:
			var ok bool
			if b, ok = appendHistogram(b, name, lt.s, sa, om, les); !ok {
				return b[:start], false
			}
			continue
		}
		b = append(b, '\n')
	}
	return b, true
}

// appendHistogram appends the bucket, sum and count lines of one histogram series:
// cumulative buckets by bound, the +Inf bucket being the count.
func appendHistogram(b []byte, name, labels string, sa *seriesAgg, om bool, les *leTexts) ([]byte, bool) {
	if !slices.IsSortedFunc(sa.buckets, cmpBucket) {
		slices.SortFunc(sa.buckets, cmpBucket)
	}
	acc := 0.0
	for j, bk := range sa.buckets {
		acc += bk.n
		if math.IsInf(bk.le, 1) {
			continue
		}
		if b = expo.AppendBucket(b, name, labels, les.get(j, bk.le, om)); !appendCount(&b, acc, om) {
			return b, false
		}
	}
	if b = expo.AppendBucket(b, name, labels, "+Inf"); !appendCount(&b, acc, om) {
		return b, false
	}
	b = expo.AppendSeries(b, name, "_sum", labels)
	b = expo.AppendFloat(b, sa.sum, om)
	b = append(b, '\n')
	b = expo.AppendSeries(b, name, "_count", labels)
	ok := appendCount(&b, acc, om)
	return b, ok
}

// appendCount appends a histogram count and a newline: the number in the text format (as
// expfmt writes a count made by batch.count), an integer in OpenMetrics, which has no
// other (false: the count is none).
func appendCount(b *[]byte, v float64, om bool) bool {
	if !om {
		*b = append(expo.AppendFloat(*b, v, false), '\n')
		return true
	}
	if !(v >= 0 && v <= 1<<53 && v == math.Trunc(v)) {
		return false
	}
	*b = append(strconv.AppendUint(*b, uint64(v), 10), '\n')
	return true
}

// summaryCount is the count of a merged summary as build stores it (batch.count without a
// float field).
func summaryCount(v float64) uint64 {
	if v >= 0 && v <= 1<<53 && v == math.Trunc(v) {
		return uint64(v)
	}
	if v > 0 && !math.IsInf(v, 1) {
		return uint64(math.Round(v))
	}
	return 0
}
