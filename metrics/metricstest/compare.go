package metricstest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herdhttp/herd/metrics"
)

// CompareText gathers g and compares it with expected, a text exposition (format 0.0.4, with
// # HELP and # TYPE lines). Values are compared as numbers ("1" equals "1.0"), series and
// families in any order. names restricts the comparison to those families (their exposed
// names: "http_requests_total" for a counter). Without names, every family of expected is
// compared, and so is every gathered family except herd's own bookkeeping ("herd_*"), which
// is compared only when expected mentions it. It returns nil, or an error showing the
// difference.
func CompareText(g metrics.Gatherer, expected string, names ...string) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	want, err := p.TextToMetricFamilies(strings.NewReader(expected))
	if err != nil {
		return fmt.Errorf("metricstest: parse expected text: %w", err)
	}
	got, err := g.Gather()
	if err != nil {
		return fmt.Errorf("metricstest: gather: %w", err)
	}
	keep := func(name string) bool {
		if len(names) > 0 {
			return slices.Contains(names, name)
		}
		return want[name] != nil || !strings.HasPrefix(name, "herd_")
	}
	var wantFams, gotFams []*dto.MetricFamily
	for name, mf := range want {
		if keep(name) {
			wantFams = append(wantFams, mf)
		}
	}
	for _, mf := range got {
		if keep(mf.GetName()) {
			gotFams = append(gotFams, mf)
		}
	}
	w, err := render(wantFams)
	if err != nil {
		return err
	}
	h, err := render(gotFams)
	if err != nil {
		return err
	}
	if w == h {
		return nil
	}
	return fmt.Errorf("metricstest: exposition differs (- expected, + got):\n%s", diff(w, h))
}

// ExpectText is CompareText that fails t.
func ExpectText(t testing.TB, g metrics.Gatherer, expected string, names ...string) {
	t.Helper()
	if err := CompareText(g, expected, names...); err != nil {
		t.Error(err)
	}
}

// Text returns g's families in the text format 0.0.4, restricted to names if any are given.
func Text(g metrics.Gatherer, names ...string) (string, error) {
	fams, err := g.Gather()
	if err != nil {
		return "", fmt.Errorf("metricstest: gather: %w", err)
	}
	if len(names) > 0 {
		fams = slices.DeleteFunc(slices.Clone(fams), func(mf *dto.MetricFamily) bool {
			return !slices.Contains(names, mf.GetName())
		})
	}
	return render(fams)
}

// render normalises families (sorted families, series and labels) and encodes them.
func render(fams []*dto.MetricFamily) (string, error) {
	fams = slices.Clone(fams)
	slices.SortFunc(fams, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	var buf bytes.Buffer
	for _, mf := range fams {
		c := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
		for _, m := range mf.Metric {
			cm := &dto.Metric{Counter: m.Counter, Gauge: m.Gauge, Summary: m.Summary,
				Histogram: m.Histogram, Untyped: m.Untyped, TimestampMs: m.TimestampMs}
			cm.Label = slices.Clone(m.Label)
			slices.SortFunc(cm.Label, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
			c.Metric = append(c.Metric, cm)
		}
		slices.SortFunc(c.Metric, func(a, b *dto.Metric) int { return cmp.Compare(labelKey(a), labelKey(b)) })
		if _, err := expfmt.MetricFamilyToText(&buf, c); err != nil {
			return "", fmt.Errorf("metricstest: encode %s: %w", mf.GetName(), err)
		}
	}
	return buf.String(), nil
}

func labelKey(m *dto.Metric) string {
	var b strings.Builder
	for _, lp := range m.Label {
		b.WriteString(lp.GetName())
		b.WriteByte(0)
		b.WriteString(lp.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}

// diff is a small line diff (longest common subsequence), enough for exposition text.
func diff(a, b string) string {
	x, y := strings.Split(strings.TrimSuffix(a, "\n"), "\n"), strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out.WriteString("- " + x[i] + "\n")
			i++
		default:
			out.WriteString("+ " + y[j] + "\n")
			j++
		}
	}
	return out.String()
}
