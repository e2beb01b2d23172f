package workermetrics

import (
	dto "github.com/prometheus/client_model/go"
)

// appendFamily appends mf as a MetricFamily message of client_model's
// metrics.proto. Exemplars and created timestamps are left out: the master
// does not serve them.
func appendFamily(b []byte, mf *dto.MetricFamily) []byte {
	if mf.Name != nil {
		b = appendStringField(b, 1, *mf.Name)
	}
	if mf.Help != nil {
		b = appendStringField(b, 2, *mf.Help)
	}
	if mf.Type != nil {
		b = appendVarintField(b, 3, uint64(*mf.Type))
	}
	for _, m := range mf.Metric {
		b = appendNested(b, 4, func(b []byte) []byte { return appendMetric(b, m) })
	}
	if mf.Unit != nil {
		b = appendStringField(b, 5, *mf.Unit)
	}
	return b
}

func appendMetric(b []byte, m *dto.Metric) []byte {
	if m == nil {
		return b
	}
	for _, lp := range m.Label {
		b = appendNested(b, 1, func(b []byte) []byte {
			if lp.Name != nil {
				b = appendStringField(b, 1, *lp.Name)
			}
			if lp.Value != nil {
				b = appendStringField(b, 2, *lp.Value)
			}
			return b
		})
	}
	if m.Gauge != nil {
		b = appendValue(b, 2, m.Gauge.Value)
	}
	if m.Counter != nil {
		b = appendValue(b, 3, m.Counter.Value)
	}
	if m.Summary != nil {
		b = appendNested(b, 4, func(b []byte) []byte { return appendSummary(b, m.Summary) })
	}
	if m.Untyped != nil {
		b = appendValue(b, 5, m.Untyped.Value)
	}
	if m.TimestampMs != nil {
		b = appendVarintField(b, 6, uint64(*m.TimestampMs))
	}
	if m.Histogram != nil {
		b = appendNested(b, 7, func(b []byte) []byte { return appendHistogram(b, m.Histogram) })
	}
	return b
}

// appendValue appends a Gauge, Counter or Untyped message: one double in
// field 1.
func appendValue(b []byte, field int, v *float64) []byte {
	return appendNested(b, field, func(b []byte) []byte {
		if v != nil {
			b = appendDoubleField(b, 1, *v)
		}
		return b
	})
}

func appendSummary(b []byte, s *dto.Summary) []byte {
	if s.SampleCount != nil {
		b = appendVarintField(b, 1, *s.SampleCount)
	}
	if s.SampleSum != nil {
		b = appendDoubleField(b, 2, *s.SampleSum)
	}
	for _, q := range s.Quantile {
		b = appendNested(b, 3, func(b []byte) []byte {
			if q.Quantile != nil {
				b = appendDoubleField(b, 1, *q.Quantile)
			}
			if q.Value != nil {
				b = appendDoubleField(b, 2, *q.Value)
			}
			return b
		})
	}
	return b
}

func appendHistogram(b []byte, h *dto.Histogram) []byte {
	if h.SampleCount != nil {
		b = appendVarintField(b, 1, *h.SampleCount)
	}
	if h.SampleSum != nil {
		b = appendDoubleField(b, 2, *h.SampleSum)
	}
	for _, bk := range h.Bucket {
		b = appendNested(b, 3, func(b []byte) []byte {
			if bk.CumulativeCount != nil {
				b = appendVarintField(b, 1, *bk.CumulativeCount)
			}
			if bk.UpperBound != nil {
				b = appendDoubleField(b, 2, *bk.UpperBound)
			}
			if bk.CumulativeCountFloat != nil {
				b = appendDoubleField(b, 4, *bk.CumulativeCountFloat)
			}
			return b
		})
	}
	if h.SampleCountFloat != nil {
		b = appendDoubleField(b, 4, *h.SampleCountFloat)
	}
	if h.Schema != nil {
		b = appendZigzagField(b, 5, int64(*h.Schema))
	}
	if h.ZeroThreshold != nil {
		b = appendDoubleField(b, 6, *h.ZeroThreshold)
	}
	if h.ZeroCount != nil {
		b = appendVarintField(b, 7, *h.ZeroCount)
	}
	if h.ZeroCountFloat != nil {
		b = appendDoubleField(b, 8, *h.ZeroCountFloat)
	}
	b = appendSpans(b, 9, h.NegativeSpan)
	for _, d := range h.NegativeDelta {
		b = appendZigzagField(b, 10, d)
	}
	for _, c := range h.NegativeCount {
		b = appendDoubleField(b, 11, c)
	}
	b = appendSpans(b, 12, h.PositiveSpan)
	for _, d := range h.PositiveDelta {
		b = appendZigzagField(b, 13, d)
	}
	for _, c := range h.PositiveCount {
		b = appendDoubleField(b, 14, c)
	}
	return b
}

func appendSpans(b []byte, field int, spans []*dto.BucketSpan) []byte {
	for _, sp := range spans {
		b = appendNested(b, field, func(b []byte) []byte {
			if sp.Offset != nil {
				b = appendZigzagField(b, 1, int64(*sp.Offset))
			}
			if sp.Length != nil {
				b = appendVarintField(b, 2, uint64(*sp.Length))
			}
			return b
		})
	}
	return b
}
