package metrics

import (
	"errors"
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Gatherers merges the families of several Gatherers, like client_golang's
// prometheus.Gatherers: families of one name are joined (their type and help must agree),
// a series that appears twice is an error. The result is sorted. On errors it returns what
// it could gather together with an error listing them all.
//
// A family that only one of herd's own gatherers (DirGatherer, Registry, Gatherers) returns
// is passed through as it is: those already return unique series in sorted order, and
// checking them again would cost the master's scrape more than the merge itself.
type Gatherers []Gatherer

// checkedGatherer is implemented by herd's gatherers, whose families have unique names and
// unique series, sorted.
type checkedGatherer interface{ checked() }

func (*DirGatherer) checked() {}
func (*Registry) checked()    {}
func (Gatherers) checked()    {}

// Gather gathers from every Gatherer in order.
func (gs Gatherers) Gather() ([]*dto.MetricFamily, error) {
	type part struct {
		i       int // the gatherer's index
		mf      *dto.MetricFamily
		checked bool
	}
	var errs []error
	byName := make(map[string][]part)
	var names []string // in order of first appearance
	for i, g := range gs {
		fams, err := g.Gather()
		if err != nil {
			errs = append(errs, fmt.Errorf("gatherer %d: %w", i, err))
		}
		_, checked := g.(checkedGatherer)
		for _, mf := range fams {
			name := mf.GetName()
			if _, ok := byName[name]; !ok {
				names = append(names, name)
			}
			byName[name] = append(byName[name], part{i, mf, checked})
		}
	}
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, name := range names {
		parts := byName[name]
		if len(parts) == 1 && parts[0].checked {
			out = append(out, parts[0].mf)
			continue
		}
		first := parts[0].mf
		have := &dto.MetricFamily{Name: first.Name, Help: first.Help, Type: first.Type, Unit: first.Unit}
		seen := make(map[string]bool) // labels of every series
		for _, p := range parts {
			if have.GetType() != p.mf.GetType() || have.GetHelp() != p.mf.GetHelp() {
				errs = append(errs, fmt.Errorf("gatherer %d: family %q has type %s and help %q, another gatherer gave type %s and help %q",
					p.i, name, p.mf.GetType(), p.mf.GetHelp(), have.GetType(), have.GetHelp()))
				continue
			}
			for _, m := range p.mf.Metric {
				id := seriesID(name, m)
				if seen[id] {
					errs = append(errs, fmt.Errorf("gatherer %d: series %s{%s} gathered twice", p.i, name, labelString(m)))
					continue
				}
				seen[id] = true
				have.Metric = append(have.Metric, m)
			}
		}
		sortMetrics(have.Metric)
		out = append(out, have)
	}
	sortFamilies(out)
	if len(errs) > 0 {
		return out, fmt.Errorf("metrics: %w", errors.Join(errs...))
	}
	return out, nil
}

func seriesID(name string, m *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	for _, lp := range sortedLabels(m) {
		b.WriteByte(0)
		b.WriteString(lp.GetName())
		b.WriteByte(0)
		b.WriteString(lp.GetValue())
	}
	return b.String()
}

func sortedLabels(m *dto.Metric) []*dto.LabelPair {
	l := append([]*dto.LabelPair(nil), m.GetLabel()...)
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].GetName() < l[j-1].GetName(); j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, lp := range sortedLabels(m) {
		parts = append(parts, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
	}
	return strings.Join(parts, ",")
}
