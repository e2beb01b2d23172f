package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
)

// Names are checked with the legacy (classic) Prometheus rules, explicitly, so that the result
// never depends on the global model.NameValidationScheme and every exposition format and every
// client_python reader accepts them unescaped.
var nameRules = model.LegacyValidation

// checkName validates a metric family name.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("metrics: empty metric name")
	}
	if !nameRules.IsValidMetricName(name) {
		return fmt.Errorf("metrics: invalid metric name %q: want [a-zA-Z_:][a-zA-Z0-9_:]*", name)
	}
	return nil
}

// checkLabelNames validates the variable label names and the const labels of one family.
// reserved names are owned by the metric type (le for histograms, quantile for summaries,
// pid for gauges, which the multi-process merge adds or drops).
func checkLabelNames(metric string, names []string, constLabels map[string]string, reserved ...string) error {
	seen := make(map[string]bool, len(names)+len(constLabels))
	check := func(n, what string) error {
		switch {
		case !nameRules.IsValidLabelName(n):
			return fmt.Errorf("metrics: %s: invalid %s name %q: want [a-zA-Z_][a-zA-Z0-9_]*", metric, what, n)
		case strings.HasPrefix(n, "__"):
			return fmt.Errorf("metrics: %s: %s name %q is reserved (starts with __)", metric, what, n)
		case slices.Contains(reserved, n):
			return fmt.Errorf("metrics: %s: %s name %q is reserved for this metric type", metric, what, n)
		case seen[n]:
			return fmt.Errorf("metrics: %s: duplicate label name %q", metric, n)
		}
		seen[n] = true
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(constLabels)) {
		if err := check(n, "const label"); err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := check(n, "label"); err != nil {
			return err
		}
	}
	return nil
}

// checkID validates a file id: it becomes part of file names and is split on '_' by readers.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("metrics: empty file id")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("metrics: invalid file id %q: want letters, digits and '-' only", id)
		}
	}
	return nil
}
