package metrics

import (
	"fmt"

	dto "github.com/prometheus/client_model/go"
)

// ConstFamily builds one metric family of constant samples: values a Gatherer computes at
// scrape time (a master's view of its workers, a process's resources) rather than records
// into metric files. It is client_golang's MustNewConstMetric for herd's Gatherers:
//
//	f := metrics.NewConstFamily("jobs_queued", "Jobs waiting, by queue.", dto.MetricType_GAUGE, "queue")
//	f.Add(3, "mail")
//	f.Add(0, "resize")
//	return []*dto.MetricFamily{f.Family()}, nil
//
// Names and label names are the program's own constants: they are not checked here (the
// scrape handler's encoder rejects what Prometheus would). A ConstFamily is not safe for
// concurrent use; build one per Gather.
type ConstFamily struct {
	mf     *dto.MetricFamily
	labels []*string // label names, shared by every sample
}

// NewConstFamily starts a family of type typ (GAUGE, COUNTER or UNTYPED) whose samples
// carry the label names labelNames, in this order. Another type panics: histograms and
// summaries are not constant samples.
func NewConstFamily(name, help string, typ dto.MetricType, labelNames ...string) *ConstFamily {
	switch typ {
	case dto.MetricType_GAUGE, dto.MetricType_COUNTER, dto.MetricType_UNTYPED:
	default:
		panic(fmt.Sprintf("metrics: NewConstFamily %s: type %s is not a constant sample type", name, typ))
	}
	f := &ConstFamily{mf: &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum()}}
	for _, l := range labelNames {
		f.labels = append(f.labels, &l)
	}
	return f
}

// Add appends a sample with value v and one value per label name, in the order of
// NewConstFamily's labelNames. A different number of values panics: it is a mistake in
// the program, not in its input.
func (f *ConstFamily) Add(v float64, labelValues ...string) *ConstFamily {
	if len(labelValues) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s: %d label values for %d label names", f.mf.GetName(), len(labelValues), len(f.labels)))
	}
	m := &dto.Metric{}
	for i, name := range f.labels {
		m.Label = append(m.Label, &dto.LabelPair{Name: name, Value: &labelValues[i]})
	}
	switch f.mf.GetType() {
	case dto.MetricType_GAUGE:
		m.Gauge = &dto.Gauge{Value: &v}
	case dto.MetricType_COUNTER:
		m.Counter = &dto.Counter{Value: &v}
	default:
		m.Untyped = &dto.Untyped{Value: &v}
	}
	f.mf.Metric = append(f.mf.Metric, m)
	return f
}

// Family returns the family built so far. Later calls to Add change it.
func (f *ConstFamily) Family() *dto.MetricFamily { return f.mf }
