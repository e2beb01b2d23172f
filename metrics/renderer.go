package metrics

import (
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// A Renderer is a Gatherer that serves the families of another Gatherer (Beside) together
// with families of its own, which it renders in the text formats itself: package
// workermetrics' Gatherer, which adds the workers' exported families to herd's. Handler
// serves a Renderer's text and OpenMetrics scrapes by rendering Beside's families as it
// renders any Gatherer's (straight from the files when Beside is, or holds, a DirGatherer)
// and appending the Renderer's pre-rendered families, each in its place in name order; the
// body is the same as encoding what Gather returns. Protobuf scrapes go through Gather.
type Renderer interface {
	Gatherer
	// Beside returns the Gatherer whose families the Renderer serves beside its own (nil:
	// none).
	Beside() Gatherer
	// RenderFamilies appends the Renderer's own families, for a scrape in which Beside
	// gave the families listed in beside, to b in format (expfmt.TypeTextPlain or
	// expfmt.TypeOpenMetrics), without the final "# EOF", and returns b and where each
	// family is in it. The families' names must differ from those in beside, and from each
	// other.
	RenderFamilies(b []byte, format expfmt.Format, beside []FamilyType) ([]byte, []RenderedFamily)
}

// FamilyType is the name and type of a family.
type FamilyType struct {
	Name string
	Type dto.MetricType
}

// RenderedFamily is a family a Renderer rendered: its name and its exposition, b[Start:End]
// of the buffer RenderFamilies returned.
type RenderedFamily struct {
	Name       string
	Start, End int
}

// metricType returns the family's type without building it as a dto family.
func (f *family) metricType() dto.MetricType {
	if f.mf != nil || f.fa == nil {
		return f.mf.GetType()
	}
	switch f.fa.typ {
	case typeCounter:
		return dto.MetricType_COUNTER
	case typeGauge:
		return dto.MetricType_GAUGE
	case typeHistogram:
		return dto.MetricType_HISTOGRAM
	case typeSummary:
		return dto.MetricType_SUMMARY
	}
	return dto.MetricType_UNTYPED
}

// appendRendered asks r for its families in a scrape whose other families are fams, and
// returns fams with them: pre-rendered families in e.pre.
func appendRendered(r Renderer, e *exposer, fams []family) []family {
	beside := make([]FamilyType, len(fams))
	for i := range fams {
		beside[i] = FamilyType{Name: fams[i].name, Type: fams[i].metricType()}
	}
	var rendered []RenderedFamily
	e.pre, rendered = r.RenderFamilies(e.pre[:0], e.format, beside)
	for _, rf := range rendered {
		fams = append(fams, family{name: rf.Name, pre: e.pre[rf.Start:rf.End:rf.End]})
	}
	return fams
}
