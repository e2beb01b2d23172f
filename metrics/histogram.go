package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/herdhttp/herd/mmapstore"
)

// DefBuckets returns client_golang's default histogram buckets (a new slice on every call:
// the package holds no mutable state).
//
// client_python's defaults differ (they add .075, .75 and 7.5); the merge takes the union of
// bounds, so families written by both still merge.
func DefBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// LinearBuckets returns count buckets, the first with upper bound start, each width wider
// than the previous, rounded to 15 significant digits (so that 0.1 + 2*0.1 is 0.3, not
// 0.30000000000000004). It returns an error if count < 1 or width <= 0.
func LinearBuckets(start, width float64, count int) ([]float64, error) {
	if count < 1 {
		return nil, fmt.Errorf("metrics: LinearBuckets needs a positive count, got %d", count)
	}
	if !(width > 0) || math.IsInf(width, 0) || math.IsNaN(start) || math.IsInf(start, 0) {
		return nil, fmt.Errorf("metrics: LinearBuckets needs a finite start and width > 0, got %v, %v", start, width)
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = round15(start + float64(i)*width)
	}
	return b, nil
}

// ExponentialBuckets returns count buckets, the first with upper bound start, each factor
// times the previous, rounded to 15 significant digits. It returns an error if count < 1, start <= 0 or factor <= 1.
func ExponentialBuckets(start, factor float64, count int) ([]float64, error) {
	if count < 1 {
		return nil, fmt.Errorf("metrics: ExponentialBuckets needs a positive count, got %d", count)
	}
	if !(start > 0) || math.IsInf(start, 0) || !(factor > 1) || math.IsInf(factor, 0) {
		return nil, fmt.Errorf("metrics: ExponentialBuckets needs start > 0 and factor > 1, got %v, %v", start, factor)
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = round15(start * math.Pow(factor, float64(i)))
	}
	return b, nil
}

func round15(x float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 15, 64), 64)
	if err != nil {
		return x
	}
	return r
}

// HistogramOpts describes a histogram family.
type HistogramOpts struct {
	Name string
	Help string
	// Buckets are the upper bounds, strictly increasing; a final +Inf is implied (and
	// accepted). Zero: DefBuckets().
	Buckets     []float64
	ConstLabels map[string]string
}

// HistogramVec is a histogram family with variable labels. Safe for concurrent use.
type HistogramVec struct {
	v *vec[Histogram]
}

// Histogram is one histogram series. Observe is safe for concurrent use, lock-free, and
// allocates nothing.
type Histogram struct {
	bounds  []float64         // shared by the family, without +Inf
	buckets []*mmapstore.Cell // len(bounds)+1, the last is +Inf; per bucket, not cumulative
	sum     *mmapstore.Cell   // nil: no-op handle
}

func checkBuckets(name string, b []float64) ([]float64, error) {
	if len(b) == 0 {
		return DefBuckets(), nil
	}
	if math.IsInf(b[len(b)-1], 1) {
		b = b[:len(b)-1]
	}
	out := make([]float64, len(b))
	for i, x := range b {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("metrics: %s: invalid bucket bound %v", name, x)
		}
		if i > 0 && !(x > b[i-1]) {
			return nil, fmt.Errorf("metrics: %s: bucket bounds must be strictly increasing, got %v after %v", name, x, b[i-1])
		}
		out[i] = x
	}
	return out, nil
}

// NewHistogramVec registers a histogram family with the given variable label names ("le" is
// reserved).
func (r *Registry) NewHistogramVec(o HistogramOpts, labelNames ...string) (*HistogramVec, error) {
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	if err := checkLabelNames(o.Name, labelNames, o.ConstLabels, "le"); err != nil {
		return nil, err
	}
	bounds, err := checkBuckets(o.Name, o.Buckets)
	if err != nil {
		return nil, err
	}
	d := newDesc(typeHistogram, o.Name, o.Help, o.ConstLabels, labelNames)
	d.buckets = bounds
	les := make([]string, len(bounds)+1)
	for i, b := range bounds {
		les[i] = pyFloat(b)
	}
	les[len(bounds)] = "+Inf"
	hv := &HistogramVec{}
	hv.v = newVec(r, d, func(names, values []string) (*Histogram, error) {
		h := &Histogram{bounds: bounds, buckets: make([]*mmapstore.Cell, len(les))}
		// Entry order as Python's: the sum, then the buckets.
		sum, err := r.cell(d, d.family+"_sum", names, values)
		if err != nil {
			return nil, err
		}
		h.sum = sum
		names = append(names, "le")
		values = append(values, "")
		for i, le := range les {
			values[len(values)-1] = le
			c, err := r.cell(d, d.family+"_bucket", names, values)
			if err != nil {
				return nil, err
			}
			h.buckets[i] = c
		}
		return h, nil
	}, &Histogram{})
	d.vec = hv
	if err := r.register(d); err != nil {
		return nil, err
	}
	return hv, nil
}

// MustNewHistogramVec is NewHistogramVec that panics on error, for setup code.
func (r *Registry) MustNewHistogramVec(o HistogramOpts, labelNames ...string) *HistogramVec {
	v, err := r.NewHistogramVec(o, labelNames...)
	if err != nil {
		panic(err)
	}
	return v
}

// NewHistogram registers a histogram family without variable labels and returns its series.
func (r *Registry) NewHistogram(o HistogramOpts) (*Histogram, error) {
	v, err := r.NewHistogramVec(o)
	if err != nil {
		return nil, err
	}
	return v.Get()
}

// MustNewHistogram is NewHistogram that panics on error, for setup code.
func (r *Registry) MustNewHistogram(o HistogramOpts) *Histogram {
	h, err := r.NewHistogram(o)
	if err != nil {
		panic(err)
	}
	return h
}

// With returns the series of the given label values; see CounterVec.With.
func (v *HistogramVec) With(labelValues ...string) *Histogram { return v.v.with(labelValues) }

// Get is With that returns the error instead of counting it.
func (v *HistogramVec) Get(labelValues ...string) (*Histogram, error) { return v.v.get(labelValues) }

// Observe records one observation: the bucket of the smallest bound >= v, and the sum.
// NaN goes to the +Inf bucket (and makes the sum NaN), as in client_golang.
func (h *Histogram) Observe(v float64) {
	if h.sum == nil {
		return
	}
	lo, hi := 0, len(h.bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.bounds[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if v != v { // NaN compares false with every bound
		lo = len(h.bounds)
	}
	h.buckets[lo].Add(1)
	h.sum.Add(v)
}

// pyFloat formats f as client_python's floatToGoString does for the "le" label, so that
// herd writes the very keys Python writes ("0.005", "1.0", "+Inf", "1.234567e+06").
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	s := pyRepr(f)
	dot := strings.IndexByte(s, '.')
	if f > 0 && dot > 6 {
		m := strings.TrimRight(s[:1]+"."+s[1:dot]+s[dot+1:], "0.")
		return m + "e+0" + strconv.Itoa(dot-1)
	}
	return s
}

// pyRepr is Python's repr(float): the shortest round-trip digits, positional for decimal
// exponents -4..15 (with ".0" when integral), else d.ddde±XX.
func pyRepr(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := ""
	if e[0] == '-' {
		neg, e = "-", e[1:]
	}
	i := strings.IndexByte(e, 'e')
	mant, exp := e[:i], e[i+1:]
	x, _ := strconv.Atoi(exp)
	digits := strings.Replace(mant, ".", "", 1)
	if x < -4 || x >= 16 {
		sign := "+"
		if x < 0 {
			sign, x = "-", -x
		}
		es := strconv.Itoa(x)
		if len(es) < 2 {
			es = "0" + es
		}
		return neg + mant + "e" + sign + es
	}
	var s string
	switch {
	case x < 0:
		s = "0." + strings.Repeat("0", -x-1) + digits
	case x+1 >= len(digits):
		s = digits + strings.Repeat("0", x+1-len(digits)) + ".0"
	default:
		s = digits[:x+1] + "." + digits[x+1:]
	}
	return neg + s
}
