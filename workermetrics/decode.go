package workermetrics

import (
	"encoding/binary"
	"slices"
	"strings"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// family is a decoded family of one snapshot, or a sum of them.
type family struct {
	// mf has the family's name, help, type and unit; its series (Metric)
	// only for a per-worker family.
	mf *dto.MetricFamily
	// sets are the label sets of the series, in order: their keys
	// identify a series across workers.
	sets []*labelSet
	// The values of the series: counters, gauges, untyped (vals) or
	// summed histograms (hists).
	vals  []float64
	hists []hist
	// perWorker: mf.Metric carry a worker label (see
	// merger.perWorkerFamily); otherwise the family is summed.
	perWorker bool
	// oldValues: a per-worker family's mf.Metric have its labels and
	// timestamps but older values; vals has its values (see metrics).
	oldValues bool
	// drop is why the family cannot be served (noDrop: it can).
	drop dropReason
}

// labelSet is one interned label set.
type labelSet struct {
	key        string           // identity: the protobuf encoding of the labels sorted by name
	raw        string           // the encoding a worker sent, its key in decoder.sets
	labels     []*dto.LabelPair // sorted by name
	withWorker []*dto.LabelPair // labels and worker="<id>", in name order
	bad        bool             // a label name invalid, reserved ("__*") or given twice
	hasWorker  bool
	hasLe      bool
	hasQuant   bool
	lastFam    uint64    // the last family that used it, to find a series given twice
	lastUse    uint64    // the last snapshot that used it, to forget sets no longer sent
	plain      labelText // labels, rendered (see renderer)
	worker     labelText // withWorker, rendered
}

// decoder decodes the snapshots of one worker process. It interns strings
// and label sets: a worker sends the same series at every scrape, so a
// steady-state decode allocates the values and little else. Not safe for
// concurrent use; each worker process has its own.
type decoder struct {
	worker    string // the value of its worker label
	perWorker func(name string, t dto.MetricType) bool
	strs      map[string]*string
	sets      map[string]*labelSet
	famSerial uint64
	useSerial uint64
	used      int                     // label sets used by the current snapshot
	names     map[*string]bool        // interned family names -> valid
	famSets   map[*string][]*labelSet // interned family names -> label sets of the last decode
	// cache holds the last snapshot's families by position, with their
	// messages (see decodeSnapshot).
	cache []cachedFamily
	// scratch, reused
	body    []byte
	metrics [][]byte
	pairs   [][]byte
	key     []byte
}

func newDecoder(worker string, perWorker func(string, dto.MetricType) bool) *decoder {
	return &decoder{worker: worker, perWorker: perWorker, strs: map[string]*string{}, sets: map[string]*labelSet{},
		names: map[*string]bool{}, famSets: map[*string][]*labelSet{}}
}

// cachedFamily is a family of the last snapshot and the message it was
// decoded from.
type cachedFamily struct {
	msg []byte
	f   family
	// layout is where msg has its values, once a changed message was
	// decoded by value (see decoder.revalue).
	layout []valueAt
}

// reuse takes up a family of the last snapshot again, as decodeFamily
// would have made it: its label sets count as used.
func (d *decoder) reuse(f family) family {
	if f.mf.Name != nil {
		d.famSets[f.mf.Name] = f.sets
	}
	for _, set := range f.sets {
		if set.lastUse != d.useSerial {
			set.lastUse = d.useSerial
			d.used++
		}
	}
	return f
}

// str interns a string.
func (d *decoder) str(b []byte) *string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	d.strs[s] = &s
	return &s
}

// endSnapshot forgets what the decoder has interned and no longer uses,
// when that has grown large: a worker whose label values churn must not
// grow the master.
func (d *decoder) endSnapshot() {
	if len(d.sets) > 2*d.used+1024 {
		for k, s := range d.sets {
			if s.lastUse != d.useSerial {
				delete(d.sets, k)
			}
		}
	}
	if len(d.strs) > 4*len(d.sets)+1024 {
		clear(d.strs) // the sets and families keep the strings they use
		clear(d.names)
		clear(d.famSets)
	}
	d.useSerial++
	d.used = 0
}

// decodeFamily decodes one MetricFamily message. A malformed message is an
// error (the snapshot is unreadable); a well-formed family that cannot be
// served comes back with drop set.
func (d *decoder) decodeFamily(b []byte) (family, error) {
	d.famSerial++
	mf := &dto.MetricFamily{}
	f := family{mf: mf, drop: noDrop}
	r := wireReader{b: b}
	d.metrics = d.metrics[:0]
	for {
		field, wt, ok := r.next()
		if !ok {
			break
		}
		switch field {
		case 1, 2, 5:
			if r.expect(wt, wireBytes) {
				s := r.bytes()
				if !utf8.Valid(s) {
					f.drop = dropInvalid
				}
				switch field {
				case 1:
					mf.Name = d.str(s)
				case 2:
					mf.Help = d.str(s)
				case 5:
					mf.Unit = d.str(s)
				}
			}
		case 3:
			if r.expect(wt, wireVarint) {
				t := r.varint()
				if t > uint64(dto.MetricType_GAUGE_HISTOGRAM) {
					f.drop, t = dropInvalid, 0
				}
				mf.Type = dto.MetricType(t).Enum()
			}
		case 4:
			if r.expect(wt, wireBytes) {
				d.metrics = append(d.metrics, r.bytes())
			}
		default:
			r.skip(wt)
		}
	}
	if r.err != nil {
		return family{}, r.err
	}
	name, t := mf.GetName(), mf.GetType()
	// OpenMetrics' unit must end the family's name: a scraper rejects any
	// other. Such a unit is left out.
	base := name
	if t == dto.MetricType_COUNTER {
		base = strings.TrimSuffix(name, "_total")
	}
	if u := mf.GetUnit(); u != "" && !strings.HasSuffix(base, "_"+u) {
		mf.Unit = nil
	}
	valid, known := d.names[mf.Name]
	if !known {
		valid = mf.Name != nil && model.UTF8Validation.IsValidMetricName(name)
		d.names[mf.Name] = valid
	}
	if !valid {
		f.drop = dropInvalid
	}
	f.perWorker = d.perWorker(name, t)
	n := len(d.metrics)
	f.sets = make([]*labelSet, n)
	var want fieldSet
	switch t {
	case dto.MetricType_COUNTER:
		want = hasCounter
	case dto.MetricType_GAUGE:
		want = hasGauge
	case dto.MetricType_UNTYPED:
		want = hasUntyped
	case dto.MetricType_SUMMARY:
		want = hasSummary
	default:
		want = hasHistogram
	}
	// Summed families (counters, histograms) are kept as values and
	// histograms (see hist), the others as the Metric messages they are
	// served as, with their worker label. One allocation per family for
	// each kind of object, not one per series.
	var ms []dto.Metric
	var counters []dto.Counter
	var gauges []dto.Gauge
	var untyped []dto.Untyped
	switch {
	case !f.perWorker && t == dto.MetricType_COUNTER:
		f.vals = make([]float64, n)
	case !f.perWorker:
		f.hists = make([]hist, n)
	default:
		mf.Metric, ms = make([]*dto.Metric, n), make([]dto.Metric, n)
		switch t {
		case dto.MetricType_COUNTER:
			counters, f.vals = make([]dto.Counter, n), make([]float64, n)
		case dto.MetricType_GAUGE:
			gauges, f.vals = make([]dto.Gauge, n), make([]float64, n)
		case dto.MetricType_UNTYPED:
			untyped, f.vals = make([]dto.Untyped, n), make([]float64, n)
		}
	}
	var m dto.Metric // for summed families: receives nothing but a timestamp
	var ignored float64
	prev := d.famSets[mf.Name]
	d.famSets[mf.Name] = f.sets
	for i, mb := range d.metrics {
		mp, v, h := &m, &ignored, (*hist)(nil)
		if ms != nil {
			mp = &ms[i]
			mf.Metric[i] = mp
		}
		if f.vals != nil {
			v = &f.vals[i]
		}
		if f.hists != nil {
			h = &f.hists[i]
		}
		var p *labelSet
		if i < len(prev) {
			p = prev[i]
		}
		set, has, err := d.decodeMetric(mb, mp, v, h, p)
		if err != nil {
			return family{}, err
		}
		f.sets[i] = set
		nh, floats := mp.Histogram, mp.Histogram != nil && isFloatHistogram(mp.Histogram)
		if h != nil {
			nh, floats = h.native, h.floats
		}
		switch {
		case has != want, set.bad, set.lastFam == d.famSerial, floats,
			nh != nil && isNative(nh) && !checkNative(nh),
			set.hasLe && want == hasHistogram, set.hasQuant && want == hasSummary:
			f.drop = min(f.drop, dropInvalid)
		case set.hasWorker && f.perWorker:
			f.drop = min(f.drop, dropWorkerLabel)
		}
		set.lastFam = d.famSerial
		if set.lastUse != d.useSerial {
			set.lastUse = d.useSerial
			d.used++
		}
		if ms == nil {
			continue
		}
		mp.Label = d.withWorker(set)
		switch t {
		case dto.MetricType_COUNTER:
			mp.Counter = &counters[i]
			mp.Counter.Value = &f.vals[i]
		case dto.MetricType_GAUGE:
			mp.Gauge = &gauges[i]
			mp.Gauge.Value = &f.vals[i]
		case dto.MetricType_UNTYPED:
			mp.Untyped = &untyped[i]
			mp.Untyped.Value = &f.vals[i]
		}
	}
	return f, nil
}

// fieldSet says which value a Metric message had.
type fieldSet uint8

const (
	hasCounter fieldSet = 1 << iota
	hasGauge
	hasUntyped
	hasSummary
	hasHistogram
)

// decodeMetric decodes a Metric message into m, but its Counter, Gauge or
// Untyped, whose value goes to *v, and its histogram, which goes to *h
// unless h is nil; it returns its label set.
func (d *decoder) decodeMetric(b []byte, m *dto.Metric, v *float64, h *hist, prev *labelSet) (*labelSet, fieldSet, error) {
	r := wireReader{b: b}
	d.pairs = d.pairs[:0]
	var has fieldSet
	// The label fields' bytes, when they are one run (as every encoder
	// writes them: field 1 first) are the set's lookup key as they are.
	start, end, oneRun := -1, -1, true
	for {
		pos := len(b) - len(r.b)
		field, wt, ok := r.next()
		if !ok {
			break
		}
		if field == 1 && wt == wireBytes {
			d.pairs = append(d.pairs, r.bytes())
			switch {
			case start < 0:
				start = pos
			case end != pos:
				oneRun = false
			}
			end = len(b) - len(r.b)
			continue
		}
		if field == 6 {
			if r.expect(wt, wireVarint) {
				ts := int64(r.varint())
				m.TimestampMs = &ts
			}
			continue
		}
		if field > 7 || !r.expect(wt, wireBytes) {
			r.skip(wt)
			continue
		}
		sub := r.bytes()
		switch field {
		case 2:
			has |= hasGauge
			*v = decodeValue(sub, &r)
		case 3:
			has |= hasCounter
			*v = decodeValue(sub, &r)
		case 5:
			has |= hasUntyped
			*v = decodeValue(sub, &r)
		case 4:
			has |= hasSummary
			m.Summary = decodeSummary(sub, &r)
		case 7:
			has |= hasHistogram
			if h != nil {
				decodeHist(sub, &r, h)
			} else {
				m.Histogram = decodeHistogram(sub, &r)
			}
		}
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	var raw []byte
	if oneRun && start >= 0 {
		raw = b[start:end]
	} else {
		d.key = d.key[:0]
		for _, p := range d.pairs {
			d.key = appendNestedBytes(d.key, 1, p)
		}
		raw = d.key
	}
	// The series at this position in the worker's last snapshot is
	// usually this one: a comparison instead of a lookup.
	if prev != nil && prev.raw == string(raw) {
		return prev, has, nil
	}
	set, err := d.labelSet(raw)
	return set, has, err
}

// labelSet interns the label set of d.pairs (LabelPair messages), whose
// encoding is raw.
func (d *decoder) labelSet(raw []byte) (*labelSet, error) {
	if s, ok := d.sets[string(raw)]; ok {
		return s, nil
	}
	s := &labelSet{labels: make([]*dto.LabelPair, len(d.pairs))}
	for i, p := range d.pairs {
		lp := &dto.LabelPair{}
		r := wireReader{b: p}
		for {
			field, wt, ok := r.next()
			if !ok {
				break
			}
			if (field == 1 || field == 2) && r.expect(wt, wireBytes) {
				v := r.bytes()
				if !utf8.Valid(v) {
					s.bad = true
				}
				if field == 1 {
					lp.Name = d.str(v)
				} else {
					lp.Value = d.str(v)
				}
			} else {
				r.skip(wt)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		if lp.Value == nil {
			lp.Value = d.str(nil)
		}
		s.labels[i] = lp
	}
	s.raw = string(raw)
	// The identity across workers: the canonical encoding of the labels
	// sorted by name, whatever order and varint widths a worker used.
	slices.SortStableFunc(s.labels, compareLabels)
	var k []byte
	for _, lp := range s.labels {
		k = appendNested(k, 1, func(b []byte) []byte {
			return appendStringField(appendStringField(b, 1, lp.GetName()), 2, lp.GetValue())
		})
	}
	s.key = string(k)
	for i, lp := range s.labels {
		n := lp.GetName()
		switch {
		case lp.Name == nil, !model.UTF8Validation.IsValidLabelName(n), strings.HasPrefix(n, "__"),
			i > 0 && s.labels[i-1].GetName() == n:
			s.bad = true
		case n == workerLabel:
			s.hasWorker = true
		case n == "le":
			s.hasLe = true
		case n == "quantile":
			s.hasQuant = true
		}
	}
	d.sets[s.raw] = s
	return s, nil
}

// withWorker returns the set's labels with the worker label added.
func (d *decoder) withWorker(s *labelSet) []*dto.LabelPair {
	if s.withWorker == nil && !s.hasWorker {
		name, value := workerLabel, d.worker
		wl := &dto.LabelPair{Name: &name, Value: &value}
		i, _ := slices.BinarySearchFunc(s.labels, workerLabel, func(lp *dto.LabelPair, n string) int {
			return strings.Compare(lp.GetName(), n)
		})
		s.withWorker = slices.Concat(s.labels[:i], []*dto.LabelPair{wl}, s.labels[i:])
	}
	return s.withWorker
}

func appendNestedBytes(b []byte, field int, msg []byte) []byte {
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(msg)))
	return append(b, msg...)
}
