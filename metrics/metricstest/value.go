package metricstest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// Value returns the value of one sample of g, failing t unless exactly one matches. name is a
// sample name as exposed: "http_requests_total", "queue_depth", "latency_seconds_count",
// "latency_seconds_sum", "latency_seconds_bucket" (with an "le" label, compared as a
// number). labels are name, value pairs and must be the sample's complete label set (a gauge
// in an all mode has a "pid" label: the worker's file id).
func Value(t testing.TB, g metrics.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, err := Lookup(g, name, labels...)
	return must(t, v, err)
}

// Lookup is Value that returns an error instead of failing a test.
func Lookup(g metrics.Gatherer, name string, labels ...string) (float64, error) {
	named, want, err := samplesNamed(g, name, labels)
	if err != nil {
		return 0, err
	}
	var found []float64
	for _, s := range named {
		if s.matches(want) {
			found = append(found, s.value)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("metricstest: no sample %s with labels %q; there are:\n\t%s", name, labels, list(named))
	default:
		return 0, fmt.Errorf("metricstest: %d samples match %s%v", len(found), name, labels)
	}
}

// must returns v, or fails t with err.
func must[T any](t testing.TB, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// gather gathers g's families, with labels (name, value pairs) as a map.
func gather(g metrics.Gatherer, labels []string) ([]*dto.MetricFamily, map[string]string, error) {
	if len(labels)%2 != 0 {
		return nil, nil, fmt.Errorf("metricstest: odd number of label arguments %q: want name, value pairs", labels)
	}
	want := make(map[string]string, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	fams, err := g.Gather()
	if err != nil {
		return nil, nil, fmt.Errorf("metricstest: gather: %w", err)
	}
	return fams, want, nil
}

// samplesNamed gathers g's samples called name (an error if there is
// none), with labels (name, value pairs) as a map.
func samplesNamed(g metrics.Gatherer, name string, labels []string) ([]sample, map[string]string, error) {
	fams, want, err := gather(g, labels)
	if err != nil {
		return nil, nil, err
	}
	var named []sample
	for _, mf := range fams {
		for _, s := range samples(mf) {
			if s.name == name {
				named = append(named, s)
			}
		}
	}
	if len(named) == 0 {
		return nil, nil, fmt.Errorf("metricstest: no sample named %s (a series appears once With created it)", name)
	}
	return named, want, nil
}

// list lists samples one a line, for an error message.
func list(ss []sample) string {
	lines := make([]string, len(ss))
	for i, s := range ss {
		lines[i] = s.String()
	}
	return strings.Join(lines, "\n\t")
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s sample) String() string {
	var parts []string
	for _, k := range sortedKeys(s.labels) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, s.labels[k]))
	}
	return fmt.Sprintf("%s{%s} %v", s.name, strings.Join(parts, ","), s.value)
}

// matches reports whether s has exactly the labels of want.
func (s sample) matches(want map[string]string) bool {
	return len(want) == len(s.labels) && s.includes(want)
}

// includes reports whether s has every label of want (and maybe others).
func (s sample) includes(want map[string]string) bool {
	for k, v := range want {
		have, ok := s.labels[k]
		if !ok {
			return false
		}
		if k == "le" {
			a, err1 := strconv.ParseFloat(v, 64)
			b, err2 := strconv.ParseFloat(have, 64)
			if err1 == nil && err2 == nil && a == b {
				continue
			}
		}
		if have != v {
			return false
		}
	}
	return true
}

// samples flattens a family into the samples of its text exposition.
func samples(mf *dto.MetricFamily) []sample {
	var out []sample
	name := mf.GetName()
	for _, m := range mf.Metric {
		labels := make(map[string]string, len(m.Label)+1)
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		with := func(k, v string) map[string]string {
			l := make(map[string]string, len(labels)+1)
			for a, b := range labels {
				l[a] = b
			}
			l[k] = v
			return l
		}
		switch {
		case m.Counter != nil:
			out = append(out, sample{name, labels, m.Counter.GetValue()})
		case m.Gauge != nil:
			out = append(out, sample{name, labels, m.Gauge.GetValue()})
		case m.Untyped != nil:
			out = append(out, sample{name, labels, m.Untyped.GetValue()})
		case m.Summary != nil:
			out = append(out,
				sample{name + "_sum", labels, m.Summary.GetSampleSum()},
				sample{name + "_count", labels, float64(m.Summary.GetSampleCount())})
			for _, q := range m.Summary.Quantile {
				out = append(out, sample{name, with("quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)), q.GetValue()})
			}
		case m.Histogram != nil:
			h := m.Histogram
			total := count(h.GetSampleCount(), h.GetSampleCountFloat())
			inf := false
			for _, b := range h.Bucket {
				if math.IsInf(b.GetUpperBound(), 1) {
					inf = true
				}
				out = append(out, sample{name + "_bucket", with("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)),
					count(b.GetCumulativeCount(), b.GetCumulativeCountFloat())})
			}
			if !inf {
				out = append(out, sample{name + "_bucket", with("le", "+Inf"), total})
			}
			out = append(out, sample{name + "_sum", labels, h.GetSampleSum()}, sample{name + "_count", labels, total})
		}
	}
	return out
}

func count(u uint64, f float64) float64 {
	if f != 0 {
		return f
	}
	return float64(u)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
