package workermetrics

import (
	dto "github.com/prometheus/client_model/go"
)

// mergeHistograms adds up the histograms of one series from several
// workers: count and sum; the classic buckets at the upper bounds that every
// one of them has (a bucket's cumulative count is only known where a worker
// has that bound; one binary gives every worker the same bounds); the native
// buckets when all of them are native (see mergeNative). Exemplars and
// created timestamps are not carried over. ok is false for a native
// histogram that cannot be read.
func mergeHistograms(hs []*dto.Histogram) (_ *dto.Histogram, ok bool) {
	floats := false
	natives := 0
	for _, h := range hs {
		floats = floats || h.SampleCountFloat != nil || h.ZeroCountFloat != nil ||
			len(h.PositiveCount) > 0 || len(h.NegativeCount) > 0
		if isNative(h) {
			natives++
		}
		for _, b := range h.Bucket {
			floats = floats || b.CumulativeCountFloat != nil
		}
	}
	out := &dto.Histogram{}
	var count uint64
	var countF, sum float64
	for _, h := range hs {
		sum += h.GetSampleSum()
		if h.SampleCountFloat != nil {
			countF += h.GetSampleCountFloat()
		} else {
			count += h.GetSampleCount()
			countF += float64(h.GetSampleCount())
		}
	}
	out.SampleSum = &sum
	if floats {
		out.SampleCountFloat = &countF
	} else {
		out.SampleCount = &count
	}
	out.Bucket = mergeBuckets(hs, floats)
	if natives == len(hs) {
		if err := mergeNative(hs, out, floats); err != nil {
			return nil, false
		}
	}
	return out, true
}

// bucketCount is a classic bucket's cumulative count as a float.
func bucketCount(b *dto.Bucket) float64 {
	if b.CumulativeCountFloat != nil {
		return b.GetCumulativeCountFloat()
	}
	return float64(b.GetCumulativeCount())
}

// mergeBuckets sums the classic buckets at the bounds every histogram has.
func mergeBuckets(hs []*dto.Histogram, floats bool) []*dto.Bucket {
	first := hs[0].Bucket
	same := true
	for _, h := range hs[1:] {
		if !sameBounds(first, h.Bucket) {
			same = false
			break
		}
	}
	out := make([]*dto.Bucket, 0, len(first))
	for i, b := range first {
		bound := b.GetUpperBound()
		var n uint64
		var f float64
		kept := true
		for _, h := range hs {
			var hb *dto.Bucket
			if same {
				hb = h.Bucket[i]
			} else if hb = findBucket(h.Bucket, bound); hb == nil {
				kept = false
				break
			}
			n += hb.GetCumulativeCount()
			f += bucketCount(hb)
		}
		if !kept {
			continue
		}
		ob := &dto.Bucket{UpperBound: &bound}
		if floats {
			ob.CumulativeCountFloat = &f
		} else {
			ob.CumulativeCount = &n
		}
		out = append(out, ob)
	}
	return out
}

func sameBounds(a, b []*dto.Bucket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetUpperBound() != b[i].GetUpperBound() {
			return false
		}
	}
	return true
}

// findBucket finds the bucket with upper bound ub in bs (sorted by bound,
// as exposition requires).
func findBucket(bs []*dto.Bucket, ub float64) *dto.Bucket {
	lo, hi := 0, len(bs)
	for lo < hi {
		m := (lo + hi) / 2
		if bs[m].GetUpperBound() < ub {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(bs) && bs[lo].GetUpperBound() == ub {
		return bs[lo]
	}
	return nil
}
