package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Metric types as written in file names and reported in errors.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
	typeSummary   = "summary"
)

// desc describes one registered family.
type desc struct {
	typ         string
	name        string // as registered (a counter's may end in _total)
	family      string // as written in the files (a counter's without _total)
	help        string
	mode        GaugeMode
	constNames  []string // sorted
	constValues []string
	labelNames  []string
	buckets     []float64 // histograms: upper bounds without +Inf
	vec         any       // the registered vector, for AlreadyRegisteredError
}

func newDesc(typ, name, help string, constLabels map[string]string, labelNames []string) *desc {
	d := &desc{typ: typ, name: name, family: name, help: help, labelNames: slices.Clone(labelNames)}
	if typ == typeCounter {
		d.family = strings.TrimSuffix(name, "_total")
	}
	d.constNames = slices.Sorted(maps.Keys(constLabels))
	for _, n := range d.constNames {
		d.constValues = append(d.constValues, constLabels[n])
	}
	return d
}

func (d *desc) filePrefix() string {
	if d.typ == typeGauge {
		return "gauge_" + string(d.mode)
	}
	return d.typ
}

// exposedNames lists every name the family may show, as client_python's registry does for
// its collision check.
func (d *desc) exposedNames() []string {
	f := d.family
	switch d.typ {
	case typeCounter:
		return []string{f, f + "_total", f + "_created"}
	case typeHistogram:
		return []string{f, f + "_bucket", f + "_count", f + "_sum", f + "_created"}
	case typeSummary:
		return []string{f, f + "_count", f + "_sum", f + "_created"}
	}
	return []string{f}
}

// seriesNames returns the const and variable label names followed by the values of one child.
func (d *desc) series(values []string) (names, vals []string) {
	names = make([]string, 0, len(d.constNames)+len(d.labelNames)+1)
	names = append(append(names, d.constNames...), d.labelNames...)
	vals = make([]string, 0, cap(names))
	vals = append(append(vals, d.constValues...), values...)
	return names, vals
}

func (d *desc) same(o *desc) bool {
	return d.typ == o.typ && d.name == o.name && d.help == o.help && d.mode == o.mode &&
		slices.Equal(d.constNames, o.constNames) && slices.Equal(d.constValues, o.constValues) &&
		slices.Equal(d.labelNames, o.labelNames) && slices.Equal(d.buckets, o.buckets)
}

func (d *desc) String() string {
	s := d.typ
	if d.typ == typeGauge {
		s += " (mode " + string(d.mode) + ")"
	}
	return fmt.Sprintf("%s %q with help %q, labels %q, const labels %q", s, d.name, d.help, d.labelNames, d.constNames)
}

// AlreadyRegisteredError is returned when a family is registered twice with the same
// description. Existing holds the vector registered first (a *CounterVec, *GaugeVec,
// *HistogramVec or *SummaryVec), so a caller may use it instead.
type AlreadyRegisteredError struct {
	Name     string
	Existing any
}

func (e *AlreadyRegisteredError) Error() string {
	return fmt.Sprintf("metrics: duplicate registration of %q (the same metric is already registered; use the existing one from AlreadyRegisteredError.Existing)", e.Name)
}

// register records d, or explains why it cannot be.
func (r *Registry) register(d *desc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if old := r.families[d.family]; old != nil {
		if old.same(d) {
			return &AlreadyRegisteredError{Name: d.name, Existing: old.vec}
		}
		return fmt.Errorf("metrics: %q is already registered as %s; cannot register %s", d.name, old, d)
	}
	names := d.exposedNames()
	for _, n := range names {
		if owner, ok := r.names[n]; ok {
			return fmt.Errorf("metrics: %s: name %q collides with the already registered %s", d, n, r.families[owner])
		}
	}
	for _, n := range names {
		r.names[n] = d.family
	}
	r.families[d.family] = d
	return nil
}
