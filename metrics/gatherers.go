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
type Gatherers []Gatherer

// Gather gathers from every Gatherer in order.
func (gs Gatherers) Gather() ([]*dto.MetricFamily, error) {
	var errs []error
	byName := make(map[string]*dto.MetricFamily)
	seen := make(map[string]bool) // family name + labels of every series
	var out []*dto.MetricFamily
	for i, g := range gs {
		fams, err := g.Gather()
		if err != nil {
			errs = append(errs, fmt.Errorf("gatherer %d: %w", i, err))
		}
		for _, mf := range fams {
			name := mf.GetName()
			have := byName[name]
			if have == nil {
				have = &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
				byName[name] = have
				out = append(out, have)
			} else if have.GetType() != mf.GetType() || have.GetHelp() != mf.GetHelp() {
				errs = append(errs, fmt.Errorf("gatherer %d: family %q has type %s and help %q, another gatherer gave type %s and help %q",
					i, name, mf.GetType(), mf.GetHelp(), have.GetType(), have.GetHelp()))
				continue
			}
			for _, m := range mf.Metric {
				id := seriesID(name, m)
				if seen[id] {
					errs = append(errs, fmt.Errorf("gatherer %d: series %s{%s} gathered twice", i, name, labelString(m)))
					continue
				}
				seen[id] = true
				have.Metric = append(have.Metric, m)
			}
		}
	}
	for _, mf := range out {
		sortMetrics(mf.Metric)
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
