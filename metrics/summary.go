package metrics

import "github.com/herdhttp/herd/mmapstore"

// SummaryOpts describes a summary family. As in client_python's multiprocess mode, a summary
// has a count and a sum and no quantiles.
type SummaryOpts struct {
	Name        string
	Help        string
	ConstLabels map[string]string
}

// SummaryVec is a summary family with variable labels. Safe for concurrent use.
type SummaryVec struct {
	v *vec[Summary]
}

// Summary is one summary series. Observe is safe for concurrent use, lock-free, and
// allocates nothing.
type Summary struct {
	count, sum *mmapstore.Cell // nil: no-op handle
}

// NewSummaryVec registers a summary family with the given variable label names ("quantile"
// is reserved).
func (r *Registry) NewSummaryVec(o SummaryOpts, labelNames ...string) (*SummaryVec, error) {
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	if err := checkLabelNames(o.Name, labelNames, o.ConstLabels, "quantile"); err != nil {
		return nil, err
	}
	d := newDesc(typeSummary, o.Name, o.Help, o.ConstLabels, labelNames)
	sv := &SummaryVec{}
	sv.v = newVec(r, d, func(names, values []string) (*Summary, error) {
		count, err := r.cell(d, d.family+"_count", names, values)
		if err != nil {
			return nil, err
		}
		sum, err := r.cell(d, d.family+"_sum", names, values)
		if err != nil {
			return nil, err
		}
		return &Summary{count: count, sum: sum}, nil
	}, &Summary{})
	d.vec = sv
	if err := r.register(d); err != nil {
		return nil, err
	}
	return sv, nil
}

// MustNewSummaryVec is NewSummaryVec that panics on error, for setup code.
func (r *Registry) MustNewSummaryVec(o SummaryOpts, labelNames ...string) *SummaryVec {
	v, err := r.NewSummaryVec(o, labelNames...)
	if err != nil {
		panic(err)
	}
	return v
}

// NewSummary registers a summary family without variable labels and returns its series.
func (r *Registry) NewSummary(o SummaryOpts) (*Summary, error) {
	v, err := r.NewSummaryVec(o)
	if err != nil {
		return nil, err
	}
	return v.Get()
}

// MustNewSummary is NewSummary that panics on error, for setup code.
func (r *Registry) MustNewSummary(o SummaryOpts) *Summary {
	s, err := r.NewSummary(o)
	if err != nil {
		panic(err)
	}
	return s
}

// With returns the series of the given label values; see CounterVec.With.
func (v *SummaryVec) With(labelValues ...string) *Summary { return v.v.with(labelValues) }

// Get is With that returns the error instead of counting it.
func (v *SummaryVec) Get(labelValues ...string) (*Summary, error) { return v.v.get(labelValues) }

// Observe records one observation.
func (s *Summary) Observe(v float64) {
	if s.count == nil {
		return
	}
	s.count.Add(1)
	s.sum.Add(v)
}
