package metrics

import (
	"cmp"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// A straightforward merge of a directory, for the fast scrape to be compared with (see
// fastpath_test.go).

// refMerge merges the files of dir the way the package documentation says, with none of
// the merger's caching: the reference the fast path must match.
func refMerge(t *testing.T, dir string) []*dto.MetricFamily {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	type rseries struct {
		labels  []mmapstore.LabelPair // sorted, as exposed
		v, ts   float64
		sum     float64
		has     bool
		buckets map[float64]float64
		les     []float64 // bounds in order of first appearance
	}
	type rfam struct {
		family, typ, mode, help string
		series                  map[string]*rseries
		order                   int
	}
	fams := map[string]*rfam{}
	for _, p := range paths {
		typ, mode, id, ok := mmapstore.ParseFileName(filepath.Base(p))
		if !ok {
			continue
		}
		fs, err := mmapstore.ReadFile(p)
		if err != nil {
			continue // skipped, as the gatherer skips it
		}
		for _, s := range fs.Samples {
			k := s.Key
			f := fams[k.Family]
			if f == nil {
				f = &rfam{family: k.Family, typ: typ, mode: mode, help: k.Help, series: map[string]*rseries{}, order: len(fams)}
				fams[k.Family] = f
			}
			if typ != f.typ {
				continue // the first file's type wins
			}
			sfx, named := strings.CutPrefix(k.Sample, k.Family)
			if !named {
				continue
			}
			var labels []mmapstore.LabelPair
			le, hasLE := 0.0, false
			for _, lp := range k.Labels {
				switch {
				case lp.Name == "le":
					if v, err := strconv.ParseFloat(lp.Value, 64); err == nil {
						le, hasLE = v, true
					}
				case lp.Name == "pid" && f.typ == typeGauge:
				default:
					labels = append(labels, lp)
				}
			}
			perFile := f.typ == typeGauge && !slices.Contains([]string{"min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent"}, f.mode)
			if perFile {
				labels = append(labels, mmapstore.LabelPair{Name: "pid", Value: id})
				slices.SortFunc(labels, func(a, b mmapstore.LabelPair) int { return cmp.Compare(a.Name, b.Name) })
			}
			var sk strings.Builder
			for _, lp := range labels {
				sk.WriteString(lp.Name + "\x00" + lp.Value + "\x01")
			}
			get := func() *rseries {
				rs := f.series[sk.String()]
				if rs == nil {
					rs = &rseries{labels: labels, buckets: map[float64]float64{}}
					f.series[sk.String()] = rs
				}
				return rs
			}
			v := s.Value
			switch {
			case f.typ == typeCounter && sfx == "_total", f.typ == typeSummary && sfx == "_count":
				rs := get()
				rs.v += v
				rs.has = true
			case (f.typ == typeSummary || f.typ == typeHistogram) && sfx == "_sum":
				get().sum += v
			case f.typ == typeHistogram && sfx == "_bucket" && hasLE:
				rs := get()
				if _, ok := rs.buckets[le]; !ok {
					rs.les = append(rs.les, le)
				}
				rs.buckets[le] += v
			case f.typ == typeGauge && sfx == "":
				rs := get()
				switch f.mode {
				case "min", "livemin":
					if !rs.has || v < rs.v {
						rs.v = v
					}
					rs.has = true
				case "max", "livemax":
					if !rs.has || v > rs.v {
						rs.v = v
					}
					rs.has = true
				case "sum", "livesum":
					rs.v += v
					rs.has = true
				case "mostrecent", "livemostrecent":
					if s.Timestamp > rs.ts {
						rs.v, rs.ts, rs.has = v, s.Timestamp, true
					}
				default:
					rs.v, rs.has = v, true
				}
			}
		}
	}
	var out []*dto.MetricFamily
	byOrder := slices.SortedFunc(func(yield func(*rfam) bool) {
		for _, f := range fams {
			if !yield(f) {
				return
			}
		}
	}, func(a, b *rfam) int { return cmp.Compare(a.order, b.order) })
	for _, f := range byOrder {
		if selfFamily(f.family) {
			continue
		}
		mf := &dto.MetricFamily{Name: ptr(exposedName(f.family, f.typ)), Help: ptr(f.help)}
		switch f.typ {
		case typeCounter:
			mf.Type = dto.MetricType_COUNTER.Enum()
		case typeGauge:
			mf.Type = dto.MetricType_GAUGE.Enum()
		case typeSummary:
			mf.Type = dto.MetricType_SUMMARY.Enum()
		case typeHistogram:
			mf.Type = dto.MetricType_HISTOGRAM.Enum()
		default:
			continue
		}
		for _, rs := range f.series {
			if f.typ == typeGauge && !rs.has {
				continue
			}
			m := &dto.Metric{}
			for _, lp := range rs.labels {
				m.Label = append(m.Label, &dto.LabelPair{Name: ptr(lp.Name), Value: ptr(lp.Value)})
			}
			switch f.typ {
			case typeCounter:
				m.Counter = &dto.Counter{Value: ptr(rs.v)}
			case typeGauge:
				m.Gauge = &dto.Gauge{Value: ptr(rs.v)}
			case typeSummary:
				m.Summary = &dto.Summary{SampleSum: ptr(rs.sum), SampleCount: ptr(refSummaryCount(rs.v))}
			case typeHistogram:
				h := &dto.Histogram{SampleSum: ptr(rs.sum)}
				les := slices.Clone(rs.les)
				slices.SortFunc(les, cmp.Compare[float64])
				acc := 0.0
				for _, le := range les {
					acc += rs.buckets[le]
					if math.IsInf(le, 1) {
						continue
					}
					b := &dto.Bucket{UpperBound: ptr(le)}
					b.CumulativeCount, b.CumulativeCountFloat = refCount(acc)
					h.Bucket = append(h.Bucket, b)
				}
				h.SampleCount, h.SampleCountFloat = refCount(acc)
				m.Histogram = h
			}
			mf.Metric = append(mf.Metric, m)
		}
		if len(mf.Metric) == 0 {
			continue
		}
		sortMetrics(mf.Metric)
		out = append(out, mf)
	}
	slices.SortStableFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return slices.CompactFunc(out, func(a, b *dto.MetricFamily) bool { return a.GetName() == b.GetName() })
}

// refCount stores a cumulative count as an integer when it is one, else as a float.
func refCount(v float64) (*uint64, *float64) {
	if v >= 0 && v <= 1<<53 && v == math.Trunc(v) {
		return ptr(uint64(v)), nil
	}
	return nil, ptr(v)
}

// refSummaryCount stores a summary's count in an integer field: rounded, 0 if negative,
// NaN or infinite.
func refSummaryCount(v float64) uint64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return uint64(math.Round(v))
}

func ptr[T any](v T) *T { return &v }
