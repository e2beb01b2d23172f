package workermetrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// mergeHistograms merges client_model histograms as the master does: each
// passes through the wire into a hist, and the merged hist is served.
func mergeHistograms(hs []*dto.Histogram) (*dto.Histogram, bool) {
	ptrs := make([]*hist, len(hs))
	for i, h := range hs {
		ptrs[i] = &hist{}
		var r wireReader
		decodeHist(appendHistogram(nil, h), &r, ptrs[i])
		if r.err != nil {
			return nil, false
		}
	}
	m, ok := mergeHists(ptrs)
	if !ok {
		return nil, false
	}
	return m.toDTO(), true
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

// nativeHist observes vals in a client_golang native histogram and returns
// what it exposes.
func nativeHist(t *testing.T, factor, zeroThreshold float64, vals []float64) *dto.Histogram {
	t.Helper()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "h", Help: "h",
		NativeHistogramBucketFactor:  factor,
		NativeHistogramZeroThreshold: zeroThreshold,
	})
	for _, v := range vals {
		h.Observe(v)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Histogram
}

func randomValues(r *rand.Rand, n int) []float64 {
	vals := make([]float64, n)
	for i := range vals {
		switch r.IntN(10) {
		case 0:
			vals[i] = 0
		case 1, 2:
			vals[i] = -math.Exp(r.NormFloat64() * 4)
		default:
			vals[i] = math.Exp(r.NormFloat64() * 4)
		}
	}
	return vals
}

// sameNative compares two native histograms by their decoded buckets, not
// by their spans (client_golang keeps short runs of empty buckets inside a
// span).
func sameNative(t *testing.T, got, want *dto.Histogram) {
	t.Helper()
	if got.GetSchema() != want.GetSchema() || got.GetZeroThreshold() != want.GetZeroThreshold() {
		t.Fatalf("schema %d, zero threshold %v; want %d, %v", got.GetSchema(), got.GetZeroThreshold(), want.GetSchema(), want.GetZeroThreshold())
	}
	if got.GetZeroCount() != want.GetZeroCount() || got.GetSampleCount() != want.GetSampleCount() {
		t.Errorf("zero count %d, count %d; want %d, %d", got.GetZeroCount(), got.GetSampleCount(), want.GetZeroCount(), want.GetSampleCount())
	}
	if math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-9*math.Abs(want.GetSampleSum()) {
		t.Errorf("sum %v, want %v", got.GetSampleSum(), want.GetSampleSum())
	}
	for _, side := range []struct {
		name       string
		got, want  []*dto.BucketSpan
		gotD, wntD []int64
	}{
		{"positive", got.PositiveSpan, want.PositiveSpan, got.PositiveDelta, want.PositiveDelta},
		{"negative", got.NegativeSpan, want.NegativeSpan, got.NegativeDelta, want.NegativeDelta},
	} {
		g, err := decodeBuckets(side.got, side.gotD, got.GetSchema(), got.GetSchema())
		if err != nil {
			t.Fatal(err)
		}
		w, err := decodeBuckets(side.want, side.wntD, want.GetSchema(), want.GetSchema())
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range w {
			if n != 0 && g[i] != n {
				t.Errorf("%s bucket %d = %v, want %v", side.name, i, g[i], n)
			}
		}
		for i, n := range g {
			if n != w[i] {
				t.Errorf("%s bucket %d = %v, want %v", side.name, i, n, w[i])
			}
		}
	}
}

// Two workers with different schemas (factor 1.1 is schema 3, factor 2
// schema 0) merge into what one histogram of the coarser schema that saw
// every observation holds.
func TestNativeHistogramsMergeAtTheCoarserSchema(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a, b := randomValues(r, 2000), randomValues(r, 3000)
	fine, coarse := nativeHist(t, 1.1, 0, a), nativeHist(t, 2, 0, b)
	if fine.GetSchema() != 3 || coarse.GetSchema() != 0 {
		t.Fatalf("schemas %d and %d, want 3 and 0", fine.GetSchema(), coarse.GetSchema())
	}
	got, ok := mergeHistograms([]*dto.Histogram{fine, coarse})
	if !ok {
		t.Fatal("merge failed")
	}
	sameNative(t, got, nativeHist(t, 2, 0, append(a, b...)))
}

// A worker whose zero bucket is wider: the other's buckets below it move
// into the zero bucket, and the threshold grows to the upper bound of a
// bucket that straddles it (2^-9 for 0.001 at schema 0).
func TestNativeHistogramsWidenTheZeroBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randomValues(r, 2000), randomValues(r, 2000)
	for i := range 200 {
		a[i] = (r.Float64() - 0.5) * 0.004 // around the thresholds
		b[i] = (r.Float64() - 0.5) * 0.004
	}
	wide, narrow := nativeHist(t, 2, 0.001, a), nativeHist(t, 2, prometheus.NativeHistogramZeroThresholdZero, b)
	got, ok := mergeHistograms([]*dto.Histogram{narrow, wide})
	if !ok {
		t.Fatal("merge failed")
	}
	sameNative(t, got, nativeHist(t, 2, math.Ldexp(1, -9), append(a, b...)))
}

func TestNativeAndClassicBucketsTogether(t *testing.T) {
	mk := func(vals ...float64) *dto.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: []float64{1, 10}, NativeHistogramBucketFactor: 1.1})
		for _, v := range vals {
			h.Observe(v)
		}
		var m dto.Metric
		h.Write(&m)
		return m.Histogram
	}
	got, ok := mergeHistograms([]*dto.Histogram{mk(0.5, 5), mk(50)})
	if !ok {
		t.Fatal("merge failed")
	}
	want := mk(0.5, 5, 50)
	sameNative(t, got, want)
	if !sameBounds(got.Bucket, want.Bucket) || got.Bucket[0].GetCumulativeCount() != 1 || got.Bucket[1].GetCumulativeCount() != 2 {
		t.Errorf("classic buckets %v, want %v", got.Bucket, want.Bucket)
	}
}

// A series native in one worker and classic in another (two versions of a
// binary) keeps its classic part only.
func TestNativeDroppedWhenNotEveryWorkerHasIt(t *testing.T) {
	classic := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: []float64{1}})
	classic.Observe(0.5)
	var m dto.Metric
	classic.Write(&m)
	got, ok := mergeHistograms([]*dto.Histogram{m.Histogram, nativeHist(t, 2, 0, []float64{3})})
	if !ok {
		t.Fatal("merge failed")
	}
	if isNative(got) || got.GetSampleCount() != 2 || len(got.Bucket) != 0 {
		t.Errorf("got %v, want a classic histogram of count 2 and no common bucket", got)
	}
}

func TestEmptyNativeHistogramStaysNative(t *testing.T) {
	zero := float64(prometheus.NativeHistogramZeroThresholdZero)
	got, ok := mergeHistograms([]*dto.Histogram{nativeHist(t, 2, zero, nil), nativeHist(t, 2, zero, nil)})
	if !ok {
		t.Fatal("merge failed")
	}
	if len(got.PositiveSpan) != 1 || got.PositiveSpan[0].GetLength() != 0 {
		t.Errorf("spans %v, want the no-op span that marks an empty native histogram", got.PositiveSpan)
	}
}

// Every bucket of a finer schema lies inside the bucket reduceIndex maps it
// to.
func TestReduceIndexContainsTheBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		from := int32(r.IntN(13) - 4)
		to := int32(r.IntN(int(from)+5) - 4)
		i := int32(r.IntN(4001) - 2000)
		lo, up := bucketBounds(i, from)
		tlo, tup := bucketBounds(reduceIndex(i, from, to), to)
		if (tlo > lo && !near(tlo, lo)) || (tup < up && !near(tup, up)) {
			t.Fatalf("bucket %d of schema %d (%v, %v] is not inside bucket %d of schema %d (%v, %v]",
				i, from, lo, up, reduceIndex(i, from, to), to, tlo, tup)
		}
	}
}

func TestBadNativeHistograms(t *testing.T) {
	span := func(off int32, n uint32) *dto.BucketSpan { return &dto.BucketSpan{Offset: &off, Length: &n} }
	s := int32(0)
	for name, h := range map[string]*dto.Histogram{
		"schema out of range":     {Schema: new(int32(-5))},
		"more spans than deltas":  {Schema: &s, PositiveSpan: []*dto.BucketSpan{span(0, 3)}, PositiveDelta: []int64{1}},
		"huge span":               {Schema: &s, PositiveSpan: []*dto.BucketSpan{span(0, 1<<31)}, PositiveDelta: []int64{1}},
		"index out of range":      {Schema: &s, PositiveSpan: []*dto.BucketSpan{span(1<<30, 1)}, PositiveDelta: []int64{1}},
		"negative count":          {Schema: &s, PositiveSpan: []*dto.BucketSpan{span(0, 1)}, PositiveDelta: []int64{-1}},
		"negative zero threshold": {Schema: &s, ZeroThreshold: new(-1.0)},
	} {
		if _, ok := mergeHistograms([]*dto.Histogram{h, h}); ok {
			t.Errorf("%s: merged", name)
		}
	}
}
