package workermetrics

import (
	"errors"
	"fmt"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// Native histograms: bucket i of schema s (-4..8) covers
// (2^((i-1)/2^s), 2^(i/2^s)] on the positive side, the mirror on the
// negative side, and observations within ±ZeroThreshold go to the zero
// bucket. Reducing the schema by d joins 2^d neighbouring buckets: bucket i
// becomes bucket ((i-1) >> d) + 1, so histograms of different schemas are
// added at the coarsest of them. A worker whose histogram widened its zero
// bucket (client_golang does when a histogram has too many buckets) has a
// larger ZeroThreshold: the others' buckets below it move into the zero
// bucket, and if one of them straddles it, the threshold grows to that
// bucket's upper bound (as Prometheus adds native histograms).

const (
	minSchema = -4
	maxSchema = 8
	// maxIndex bounds bucket indices: schema 8 covers the whole float64
	// range with about 2^18 of them.
	maxIndex = 1 << 24
)

var errNative = errors.New("workermetrics: bad native histogram")

// isNative reports whether h has native buckets: client_golang sets the
// schema of every native histogram, and Prometheus takes a histogram with
// spans or a zero bucket for a native one.
func isNative(h *dto.Histogram) bool {
	return h.Schema != nil || h.ZeroThreshold != nil || h.ZeroCount != nil || h.ZeroCountFloat != nil ||
		len(h.PositiveSpan) > 0 || len(h.NegativeSpan) > 0
}

// mergeNative adds the native buckets of hs (all native, integer counts)
// into out.
func mergeNative(hs []*dto.Histogram, out *dto.Histogram) error {
	schema := int32(maxSchema)
	thr := 0.0
	for _, h := range hs {
		s := h.GetSchema()
		if s < minSchema || s > maxSchema {
			return fmt.Errorf("%w: schema %d", errNative, s)
		}
		schema = min(schema, s)
		if z := h.GetZeroThreshold(); z >= 0 && !math.IsInf(z, 1) {
			thr = max(thr, z)
		} else {
			return fmt.Errorf("%w: zero threshold %v", errNative, z)
		}
	}
	type buckets struct {
		pos, neg map[int32]float64
		thr      float64
	}
	each := make([]buckets, len(hs))
	zero := 0.0
	for i, h := range hs {
		pos, err := decodeBuckets(h.PositiveSpan, h.PositiveDelta, h.GetSchema(), schema)
		if err != nil {
			return err
		}
		neg, err := decodeBuckets(h.NegativeSpan, h.NegativeDelta, h.GetSchema(), schema)
		if err != nil {
			return err
		}
		each[i] = buckets{pos, neg, h.GetZeroThreshold()}
		zero += float64(h.GetZeroCount())
	}
	// A bucket of a narrower zero bucket's histogram that straddles the
	// threshold cannot be split: widen the threshold to its upper bound.
	for widened := true; widened; {
		widened = false
		for _, b := range each {
			if b.thr >= thr {
				continue
			}
			for _, m := range [2]map[int32]float64{b.pos, b.neg} {
				for i := range m {
					lo, up := bucketBounds(i, schema)
					if lo < thr && !near(lo, thr) && up > thr && !near(up, thr) {
						thr, widened = up, true
					}
				}
			}
		}
	}
	pos, neg := map[int32]float64{}, map[int32]float64{}
	for _, b := range each {
		for _, side := range [2]struct{ from, to map[int32]float64 }{{b.pos, pos}, {b.neg, neg}} {
			for i, n := range side.from {
				if _, up := bucketBounds(i, schema); b.thr < thr && (up < thr || near(up, thr)) {
					zero += n
					continue
				}
				side.to[i] += n
			}
		}
	}
	z := uint64(zero)
	out.Schema, out.ZeroThreshold, out.ZeroCount = &schema, &thr, &z
	out.PositiveSpan, out.PositiveDelta = encodeBuckets(pos)
	out.NegativeSpan, out.NegativeDelta = encodeBuckets(neg)
	// As client_golang does: an empty native histogram with a zero
	// threshold of zero would look like a classic one to a scraper.
	if thr == 0 && zero == 0 && len(out.PositiveSpan) == 0 && len(out.NegativeSpan) == 0 {
		off, n := int32(0), uint32(0)
		out.PositiveSpan = []*dto.BucketSpan{{Offset: &off, Length: &n}}
	}
	return nil
}

// decodeBuckets reads one side's buckets (delta-encoded counts) at schema
// from, re-indexed to the coarser schema to.
func decodeBuckets(spans []*dto.BucketSpan, deltas []int64, from, to int32) (map[int32]float64, error) {
	n := 0
	for _, sp := range spans {
		n += int(sp.GetLength())
	}
	if n != len(deltas) {
		return nil, fmt.Errorf("%w: spans hold %d buckets, given %d counts", errNative, n, len(deltas))
	}
	m := make(map[int32]float64, n)
	idx, cur, k := int64(0), int64(0), 0
	for _, sp := range spans {
		idx += int64(sp.GetOffset())
		for range sp.GetLength() {
			if idx > maxIndex || idx < -maxIndex {
				return nil, fmt.Errorf("%w: bucket index %d", errNative, idx)
			}
			cur += deltas[k]
			if cur < 0 {
				return nil, fmt.Errorf("%w: bucket count %d", errNative, cur)
			}
			c := float64(cur)
			k++
			m[reduceIndex(int32(idx), from, to)] += c
			idx++
		}
	}
	return m, nil
}

// reduceIndex maps bucket i of schema from to the bucket of the coarser
// schema to that contains it.
func reduceIndex(i, from, to int32) int32 {
	return ((i - 1) >> (from - to)) + 1
}

// bucketBounds returns the lower and upper bound of bucket i of schema s on
// the positive side.
func bucketBounds(i, s int32) (lo, up float64) {
	return bucketBound(i-1, s), bucketBound(i, s)
}

func bucketBound(i, s int32) float64 {
	if s <= 0 {
		return math.Ldexp(1, int(i)<<-s)
	}
	return math.Exp2(float64(i) / float64(int(1)<<s))
}

// near reports whether two bounds are equal but for rounding (a threshold
// client_golang computed from its bound tables, a bound from Exp2).
func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// encodeBuckets writes buckets (skipping empty ones) as spans of adjacent
// indices with delta-encoded counts.
func encodeBuckets(m map[int32]float64) (spans []*dto.BucketSpan, deltas []int64) {
	idxs := make([]int32, 0, len(m))
	for i, n := range m {
		if n != 0 {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	var next, prev int64 // the index after the last span; the last count
	for j, i := range idxs {
		if j == 0 || int64(i) != next {
			off, n := int32(int64(i)-next), uint32(0)
			spans = append(spans, &dto.BucketSpan{Offset: &off, Length: &n})
		}
		*spans[len(spans)-1].Length++
		next = int64(i) + 1
		c := int64(m[i])
		deltas = append(deltas, c-prev)
		prev = c
	}
	return spans, deltas
}

// checkNative reports whether mergeNative can read a native histogram:
// a schema in range, spans that hold as many buckets as there are counts,
// indices in range, no negative count.
func checkNative(h *dto.Histogram) bool {
	s, z := h.GetSchema(), h.GetZeroThreshold()
	return s >= minSchema && s <= maxSchema && z >= 0 && !math.IsInf(z, 1) &&
		checkSide(h.PositiveSpan, h.PositiveDelta) && checkSide(h.NegativeSpan, h.NegativeDelta)
}

// isFloatHistogram reports whether h has float counts: client_golang
// never makes one, and OpenMetrics 1.0 cannot carry one.
func isFloatHistogram(h *dto.Histogram) bool {
	if h.SampleCountFloat != nil || h.ZeroCountFloat != nil || len(h.PositiveCount) > 0 || len(h.NegativeCount) > 0 {
		return true
	}
	for _, b := range h.Bucket {
		if b.CumulativeCountFloat != nil {
			return true
		}
	}
	return false
}

func checkSide(spans []*dto.BucketSpan, deltas []int64) bool {
	n, idx := 0, int64(0)
	for _, sp := range spans {
		idx += int64(sp.GetOffset())
		if idx < -maxIndex || idx+int64(sp.GetLength()) > maxIndex {
			return false
		}
		idx += int64(sp.GetLength())
		n += int(sp.GetLength())
	}
	if n != len(deltas) {
		return false
	}
	cur := int64(0)
	for _, d := range deltas {
		if cur += d; cur < 0 {
			return false
		}
	}
	return true
}
