package metricstest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/herdhttp/herd/metrics"
)

// Sum returns the sum of the samples of g named name whose labels include
// labels, name, value pairs that may leave any label out: Sum(t, reg,
// "http_requests_total", "route", "/users/{id}") adds every method and code
// of that route, and Sum(t, reg, "http_requests_total") every request. Names
// are as for Value ("latency_seconds_count" sums the counts of a histogram's
// series). It fails t when there is no sample named name at all, or when
// no sample of that name has one of the label names given (a misspelt name
// would otherwise sum to 0); samples that exist but do not match add 0.
func Sum(t testing.TB, g metrics.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, err := LookupSum(g, name, labels...)
	return must(t, v, err)
}

// LookupSum is Sum that returns an error instead of failing a test.
func LookupSum(g metrics.Gatherer, name string, labels ...string) (float64, error) {
	named, want, err := samplesNamed(g, name, labels)
	if err != nil {
		return 0, err
	}
	var sum float64
	names := map[string]bool{} // label names of the samples called name
	for _, s := range named {
		for k := range s.labels {
			names[k] = true
		}
		if s.includes(want) {
			sum += s.value
		}
	}
	for _, k := range sortedKeys(want) {
		if !names[k] {
			return 0, fmt.Errorf("metricstest: no sample %s has a label %q; there are:\n\t%s", name, k, list(named))
		}
	}
	return sum, nil
}

// SeriesCount returns the number of series of g called name whose labels
// include labels (name, value pairs; any label may be left out), 0 when
// there is none. name is a family's exposed name ("http_requests_total",
// "http_request_duration_seconds": a histogram's series counts once, not
// once per bucket) or a sample name as for Value ("..._bucket" counts
// buckets). Use it to check that a flood of requests added no series.
func SeriesCount(t testing.TB, g metrics.Gatherer, name string, labels ...string) int {
	t.Helper()
	n, err := LookupSeriesCount(g, name, labels...)
	return must(t, n, err)
}

// LookupSeriesCount is SeriesCount that returns an error instead of
// failing a test.
func LookupSeriesCount(g metrics.Gatherer, name string, labels ...string) (int, error) {
	fams, want, err := gather(g, labels)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mf := range fams {
		if mf.GetName() == name {
			for _, m := range mf.Metric {
				s := sample{labels: make(map[string]string, len(m.Label))}
				for _, lp := range m.Label {
					s.labels[lp.GetName()] = lp.GetValue()
				}
				if s.includes(want) {
					n++
				}
			}
			continue
		}
		n += len(slices.DeleteFunc(samples(mf), func(s sample) bool { return s.name != name || !s.includes(want) }))
	}
	return n, nil
}
