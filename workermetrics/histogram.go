package workermetrics

import (
	dto "github.com/prometheus/client_model/go"
)

// hist is a histogram of a summed family as the merge keeps it: the count,
// sum and classic buckets as plain numbers (counts as float64: exact up to
// 2^53), the native buckets as decoded. Float histograms are not served
// (see isFloatHistogram).
type hist struct {
	count  float64
	sum    float64
	bounds []float64 // upper bounds of the classic buckets, increasing
	cum    []float64 // their cumulative counts
	floats bool      // it had float counts: its family is invalid
	native *dto.Histogram
}

// decodeHist decodes a Histogram message into h; a histogram with native
// buckets is also decoded whole into h.native.
func decodeHist(b []byte, parent *wireReader, h *hist) {
	if n := countField(b, 3); n > 0 {
		h.bounds, h.cum = make([]float64, 0, n), make([]float64, 0, n)
	}
	native := false
	r := wireReader{b: b}
	err := r.fields(nil, func(field, wt int) {
		switch {
		case field == 1 && r.expect(wt, wireVarint):
			if !h.floats {
				h.count = float64(r.varint())
			} else {
				r.varint()
			}
		case field == 2 && r.expect(wt, wireFixed64):
			h.sum = r.double()
		case field == 4 && r.expect(wt, wireFixed64):
			h.count, h.floats = r.double(), true
		case field == 3 && r.expect(wt, wireBytes):
			bound, count, haveFloat := 0.0, 0.0, false
			br := wireReader{b: r.bytes()}
			br.fields(&r, func(f, w int) {
				switch {
				case f == 1 && br.expect(w, wireVarint):
					if c := br.varint(); !haveFloat {
						count = float64(c)
					}
				case f == 2 && br.expect(w, wireFixed64):
					bound = br.double()
				case f == 4 && br.expect(w, wireFixed64):
					count, haveFloat = br.double(), true
				default:
					br.skip(w) // exemplar; or br failed: a no-op
				}
			})
			h.floats = h.floats || haveFloat
			h.bounds, h.cum = append(h.bounds, bound), append(h.cum, count)
		default:
			native = native || field > 4 && field <= 14
			r.skip(wt) // created timestamp, exemplars; or r failed: a no-op
		}
	})
	if err != nil {
		parent.fail()
		return
	}
	if native {
		h.native = decodeHistogram(b, parent)
		h.floats = h.floats || isFloatHistogram(h.native)
	}
}

// mergeHists adds up the histograms of one series from several workers:
// count and sum; the classic buckets at the upper bounds that every one of
// them has (a bucket's cumulative count is only known where a worker has
// that bound; one binary gives every worker the same bounds); the native
// buckets when all of them are native (see mergeNative). ok is false for a
// native histogram that cannot be read.
func mergeHists(hs []*hist) (_ hist, ok bool) {
	if len(hs) == 1 {
		return *hs[0], true
	}
	var out hist
	natives := make([]*dto.Histogram, 0, len(hs))
	for _, h := range hs {
		out.count += h.count
		out.sum += h.sum
		if h.native != nil {
			natives = append(natives, h.native)
		}
	}
	out.bounds, out.cum = mergeBuckets(hs)
	if len(natives) == len(hs) {
		out.native = &dto.Histogram{}
		if err := mergeNative(natives, out.native); err != nil {
			return hist{}, false
		}
	}
	return out, true
}

// mergeBuckets sums the classic buckets at the bounds every histogram has.
func mergeBuckets(hs []*hist) (bounds, cum []float64) {
	first := hs[0].bounds
	same := true
	for _, h := range hs[1:] {
		if !equalBounds(first, h.bounds) {
			same = false
			break
		}
	}
	if same {
		cum = make([]float64, len(first))
		for _, h := range hs {
			for i, c := range h.cum {
				cum[i] += c
			}
		}
		return first, cum // bounds shared, read-only
	}
	for _, bound := range first {
		sum, kept := 0.0, true
		for _, h := range hs {
			i := findBound(h.bounds, bound)
			if i < 0 {
				kept = false
				break
			}
			sum += h.cum[i]
		}
		if kept {
			bounds, cum = append(bounds, bound), append(cum, sum)
		}
	}
	return bounds, cum
}

func equalBounds(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// findBound finds ub in bounds (increasing, as exposition requires), or
// returns -1.
func findBound(bounds []float64, ub float64) int {
	lo, hi := 0, len(bounds)
	for lo < hi {
		m := (lo + hi) / 2
		if bounds[m] < ub {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(bounds) && bounds[lo] == ub {
		return lo
	}
	return -1
}

// toDTO returns h as served. It points into h, which must not change.
func (h *hist) toDTO() *dto.Histogram {
	c := uint64(h.count)
	out := &dto.Histogram{SampleSum: &h.sum, SampleCount: &c}
	if n := len(h.bounds); n > 0 {
		bs := make([]dto.Bucket, n)
		counts := make([]uint64, n)
		out.Bucket = make([]*dto.Bucket, n)
		for i := range bs {
			b := &bs[i]
			b.UpperBound = &h.bounds[i]
			counts[i] = uint64(h.cum[i])
			b.CumulativeCount = &counts[i]
			out.Bucket[i] = b
		}
	}
	if n := h.native; n != nil {
		out.Schema, out.ZeroThreshold, out.ZeroCount = n.Schema, n.ZeroThreshold, n.ZeroCount
		out.NegativeSpan, out.NegativeDelta = n.NegativeSpan, n.NegativeDelta
		out.PositiveSpan, out.PositiveDelta = n.PositiveSpan, n.PositiveDelta
	}
	return out
}
