package metrics

import (
	"math"

	"github.com/herdhttp/herd/mmapstore"
)

// CounterOpts describes a counter family.
type CounterOpts struct {
	// Name of the family. As in client_python, a trailing "_total" is optional: "requests"
	// and "requests_total" both expose "requests_total".
	Name string
	// Help text. Every process must use the same help for a family (the merge keeps one).
	Help string
	// ConstLabels are labels with fixed values on every series of the family.
	ConstLabels map[string]string
}

// CounterVec is a counter family with variable labels. Safe for concurrent use.
type CounterVec struct {
	v *vec[Counter]
}

// Counter is one counter series. Its methods are safe for concurrent use, lock-free, and
// allocate nothing.
type Counter struct {
	cell *mmapstore.Cell // nil: a no-op handle (the series could not be created)
}

// NewCounterVec registers a counter family with the given variable label names.
func (r *Registry) NewCounterVec(o CounterOpts, labelNames ...string) (*CounterVec, error) {
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	d := newDesc(typeCounter, o.Name, o.Help, o.ConstLabels, labelNames)
	if err := checkName(d.family); err != nil {
		return nil, err
	}
	if err := checkLabelNames(o.Name, labelNames, o.ConstLabels); err != nil {
		return nil, err
	}
	cv := &CounterVec{}
	cv.v = newVec(r, d, func(names, values []string) (*Counter, error) {
		c, err := r.cell(d, d.family+"_total", names, values)
		if err != nil {
			return nil, err
		}
		return &Counter{cell: c}, nil
	}, &Counter{})
	d.vec = cv
	if err := r.register(d); err != nil {
		return nil, err
	}
	return cv, nil
}

// MustNewCounterVec is NewCounterVec that panics on error, for setup code.
func (r *Registry) MustNewCounterVec(o CounterOpts, labelNames ...string) *CounterVec {
	v, err := r.NewCounterVec(o, labelNames...)
	if err != nil {
		panic(err)
	}
	return v
}

// NewCounter registers a counter family without variable labels and returns its one series,
// which exists (with value 0) from now on.
func (r *Registry) NewCounter(o CounterOpts) (*Counter, error) {
	v, err := r.NewCounterVec(o)
	if err != nil {
		return nil, err
	}
	return v.Get()
}

// MustNewCounter is NewCounter that panics on error, for setup code.
func (r *Registry) MustNewCounter(o CounterOpts) *Counter {
	c, err := r.NewCounter(o)
	if err != nil {
		panic(err)
	}
	return c
}

// With returns the series of the given label values (in the order of the label names),
// creating it with value 0 on first use. Keep the handle for hot paths: With looks the series
// up on every call. It never panics: if the series cannot be created (wrong number of values,
// full filesystem, closed Registry), the error is counted in herd_metrics_write_errors_total
// and logged, and a handle that does nothing is returned.
func (v *CounterVec) With(labelValues ...string) *Counter { return v.v.with(labelValues) }

// Get is With that returns the error instead of counting it.
func (v *CounterVec) Get(labelValues ...string) (*Counter, error) { return v.v.get(labelValues) }

// Inc adds 1.
func (c *Counter) Inc() {
	if c.cell != nil {
		c.cell.Add(1)
	}
}

// Add adds v. Counters only go up: a negative, infinite or NaN v is ignored (client_golang panics
// instead; herd's request path never panics).
func (c *Counter) Add(v float64) {
	if c.cell != nil && v >= 0 && !math.IsInf(v, 0) {
		c.cell.Add(v)
	}
}
