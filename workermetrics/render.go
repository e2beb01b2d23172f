package workermetrics

import (
	"math"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herdhttp/herd/internal/expo"
	"github.com/herdhttp/herd/metrics"
)

// Beside returns the gatherer of herd's families the Gatherer serves with
// the workers' (see metrics.Renderer).
func (g *Gatherer) Beside() metrics.Gatherer { return g.herd }

// RenderFamilies renders what Gather returns beside herd's families, for a
// scrape in which herd's gatherer gave the families in beside (see
// metrics.Renderer): metrics.Handler serves text and OpenMetrics scrapes of
// a Gatherer this way, without building the merged families as dto
// families. Counters, gauges and classic histograms with names and labels
// of the legacy character set are written straight from the merge, each
// series' label text rendered once per worker; any other family is encoded
// by expfmt. The bytes are those of encoding Gather's families with expfmt.
func (g *Gatherer) RenderFamilies(b []byte, format expfmt.Format, beside []metrics.FamilyType) ([]byte, []metrics.RenderedFamily) {
	start := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.collectLocked(start)
	g.merger.reserve(beside)
	fams, drops := g.merger.mergeServed(c.srcs, g.dead)
	r := newRenderer(b, format)
	r.les = &g.les
	out := make([]metrics.RenderedFamily, 0, len(fams)+6)
	for i := range fams {
		at := len(r.b)
		if !r.family(&fams[i]) && !r.encode(fams[i].dto()) {
			g.logOnce("render "+fams[i].sum.mf.GetName(), "workermetrics: encoding a family failed; left out", r.err)
		}
		if len(r.b) > at {
			out = append(out, metrics.RenderedFamily{Name: fams[i].sum.mf.GetName(), Start: at, End: len(r.b)})
		}
	}
	for _, mf := range g.selfMetrics(c.fresh, c.stale, c.skipped, drops, time.Since(start)) {
		at := len(r.b)
		r.encode(mf)
		out = append(out, metrics.RenderedFamily{Name: mf.GetName(), Start: at, End: len(r.b)})
	}
	return r.b, out
}

// renderer appends families in the text format or OpenMetrics 1.0 to b.
type renderer struct {
	b   []byte
	om  bool
	les *expo.Bounds   // nil: none kept
	enc expfmt.Encoder // for what it does not write itself
	err error          // of the last encode that failed
}

func newRenderer(b []byte, format expfmt.Format) *renderer {
	r := &renderer{b: b, om: format.FormatType() == expfmt.TypeOpenMetrics}
	r.enc = expfmt.NewEncoder(expo.Appender{B: &r.b}, format)
	return r
}

// encode appends mf as expfmt encodes it; false (and nothing appended) if
// it cannot be.
func (r *renderer) encode(mf *dto.MetricFamily) bool {
	at := len(r.b)
	if err := r.enc.Encode(mf); err != nil {
		r.b, r.err = r.b[:at], err
		return false
	}
	return true
}

// family appends s unless it is of a kind only expfmt writes exactly
// (false, nothing appended).
func (r *renderer) family(s *mergedFamily) bool {
	mf := s.sum.mf
	name, t := mf.GetName(), mf.GetType()
	switch {
	case mf.Help == nil, r.om && mf.Unit != nil, !model.LegacyValidation.IsValidMetricName(name):
		return false
	case t == dto.MetricType_COUNTER && r.om && !strings.HasSuffix(name, "_total"):
		return false
	case t == dto.MetricType_COUNTER, t == dto.MetricType_GAUGE:
	case t == dto.MetricType_HISTOGRAM && !s.perWorker():
	default:
		return false
	}
	at := len(r.b)
	r.head(name, mf.GetHelp(), t)
	ok := true
	if s.perWorker() {
		for _, f := range s.parts {
			if ok = r.values(name, f, true); !ok {
				break
			}
		}
	} else if t == dto.MetricType_HISTOGRAM {
		for i, set := range s.sum.sets {
			if ok = r.histogram(name, set, &s.sum.hists[i]); !ok {
				break
			}
		}
	} else {
		ok = r.values(name, &s.sum, false)
	}
	if !ok {
		r.b = r.b[:at]
	}
	return ok
}

// head appends the HELP and TYPE lines.
func (r *renderer) head(name, help string, t dto.MetricType) {
	family, typ := name, "gauge"
	switch t {
	case dto.MetricType_COUNTER:
		typ = "counter"
		if r.om {
			family = strings.TrimSuffix(name, "_total")
		}
	case dto.MetricType_HISTOGRAM:
		typ = "histogram"
	}
	r.b = append(r.b, "# HELP "...)
	r.b = append(r.b, family...)
	r.b = append(r.b, ' ')
	r.b = expo.AppendEscaped(r.b, help, r.om)
	r.b = append(r.b, "\n# TYPE "...)
	r.b = append(r.b, family...)
	r.b = append(r.b, ' ')
	r.b = append(r.b, typ...)
	r.b = append(r.b, '\n')
}

// values appends the series of a counter or gauge family of one worker
// (withWorker: its per-worker series) or summed.
func (r *renderer) values(name string, f *family, withWorker bool) bool {
	for i, set := range f.sets {
		var labels string
		if withWorker {
			m := f.mf.Metric[i]
			if m.TimestampMs != nil {
				return false
			}
			lt := set.text(m.Label, true)
			if lt.odd {
				return false
			}
			labels = lt.s
		} else {
			lt := set.text(set.labels, false)
			if lt.odd {
				return false
			}
			labels = lt.s
		}
		r.b = expo.AppendSeries(r.b, name, "", labels)
		r.b = append(expo.AppendFloat(r.b, f.vals[i], r.om), '\n')
	}
	return true
}

// histogram appends the lines of one summed classic histogram, as expfmt
// writes the dto histogram hist.toDTO makes.
func (r *renderer) histogram(name string, set *labelSet, h *hist) bool {
	lt := set.text(set.labels, false)
	n := len(h.bounds)
	if lt.odd || h.native != nil || n > 0 && math.IsInf(h.bounds[n-1], 1) {
		return false
	}
	for i, bound := range h.bounds {
		r.bucket(name, lt.s, bound)
		r.count(uint64(h.cum[i]))
	}
	r.bucket(name, lt.s, math.Inf(1))
	r.count(uint64(h.count))
	r.b = expo.AppendSeries(r.b, name, "_sum", lt.s)
	r.b = append(expo.AppendFloat(r.b, h.sum, r.om), '\n')
	r.b = expo.AppendSeries(r.b, name, "_count", lt.s)
	r.count(uint64(h.count))
	return true
}

func (r *renderer) bucket(name, labels string, le float64) {
	if r.les != nil {
		r.b = expo.AppendBucket(r.b, name, labels, r.les.Get(le, r.om))
	} else {
		r.b = expo.AppendBucket(r.b, name, labels, string(expo.AppendFloat(nil, le, r.om)))
	}
}

// count appends a histogram count and a newline: a number in the text
// format, an integer in OpenMetrics.
func (r *renderer) count(c uint64) {
	if r.om {
		r.b = strconv.AppendUint(r.b, c, 10)
	} else {
		r.b = expo.AppendFloat(r.b, float64(c), false)
	}
	r.b = append(r.b, '\n')
}

// labelText is a label set rendered: `a="x",b="y"`.
type labelText struct {
	s    string
	done bool
	odd  bool // a label name outside the legacy character set: expfmt quotes it
}

// text returns the set's labels (lps: its labels, or with the worker label)
// rendered, rendering them the first time.
func (s *labelSet) text(lps []*dto.LabelPair, withWorker bool) *labelText {
	lt := &s.plain
	if withWorker {
		lt = &s.worker
	}
	if lt.done {
		return lt
	}
	var b []byte
	for i, lp := range lps {
		if i > 0 {
			b = append(b, ',')
		}
		n := lp.GetName()
		if !model.LegacyValidation.IsValidLabelName(n) || n == model.MetricNameLabel {
			lt.odd = true
		}
		b = append(b, n...)
		b = append(b, '=', '"')
		b = expo.AppendEscaped(b, lp.GetValue(), true)
		b = append(b, '"')
	}
	lt.s, lt.done = string(b), true
	return lt
}
