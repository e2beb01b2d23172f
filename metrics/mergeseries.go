package metrics

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// keyInfo is what the merge derives from one key.
type keyInfo struct {
	key       *mmapstore.Key        // the key it was derived from
	sfx       string                // the sample name after the family name: "_total", "_sum", "", ...
	le        float64               // the "le" label as a float, when hasLE
	hasLE     bool                  // the key has a parsable "le" label
	labels    []mmapstore.LabelPair // sorted, without "le"
	noPID     []mmapstore.LabelPair // labels without "pid" (gauges)
	lkey      string                // labels encoded as one string (a map key)
	lkeyNoPID string                // noPID encoded
	seen      uint64                // generation of the last merge that used it

	// The series slot of this key, cached for the family state it was resolved under.
	fa    *famAgg
	epoch uint64
	kind  seriesKind
	sa    *seriesAgg
	byID  map[string]*seriesAgg // kindPerFile: one slot per file id

	id uint32 // in merger.kinfos
}

type seriesKind uint8

const (
	kindNone    seriesKind = iota
	kindLabels             // counters, summaries, histograms: all labels but le
	kindNoPID              // gauges merged over processes: pid dropped
	kindPerFile            // gauges in the all modes: one series per file id
)

type famAgg struct {
	family string // as in the files
	name   string // as exposed (a counter's ends in _total); "" for an unknown type
	gen    uint64 // the merge that last saw it
	typ    string
	mode   GaugeMode
	help   string
	series map[seriesKey]*seriesAgg
	sorted []*seriesAgg // every series, sorted by labels when !dirty
	dirty  bool         // series were added since sorted was last sorted
	// textsDue: series were added since the last render made the label texts.
	textsDue bool
	stale    bool   // the series' dto label pairs must be made again (relayout)
	epoch    uint64 // bumped when series slots are dropped: keyInfo caches of older epochs are stale

	heads heads // the rendered HELP and TYPE lines (see render)
}

// exposedName returns the name a family of the files is exposed under, or "" for an
// unknown type.
func exposedName(family, typ string) string {
	switch typ {
	case typeCounter:
		return family + "_total"
	case typeGauge, typeSummary, typeHistogram:
		return family
	}
	return ""
}

// order sorts the series by labels if some were added since the last time.
func (fa *famAgg) order() {
	if fa.dirty {
		slices.SortFunc(fa.sorted, func(a, b *seriesAgg) int { return strings.Compare(a.sortKey, b.sortKey) })
		fa.dirty, fa.stale = false, true
	}
}

// current reports whether series sa of the family is part of merge gen's output.
func (fa *famAgg) current(sa *seriesAgg, gen uint64) bool {
	return sa.gen == gen && (sa.has || fa.typ != typeGauge)
}

// hasOutput reports whether the family has a series in merge gen's output.
func (fa *famAgg) hasOutput(gen uint64) bool {
	for _, sa := range fa.sorted {
		if fa.current(sa, gen) {
			return true
		}
	}
	return false
}

type seriesKey struct {
	labels string
	pid    string
}

type bucket struct{ le, n float64 }

type seriesAgg struct {
	// Hot: touched for every sample, and by build. First, so that they share one cache
	// line (series are allocated in slabs, in the order their keys first appear in a file,
	// so a steady merge walks them almost sequentially).
	gen    uint64 // the merge that last touched it; older values are stale
	v      float64
	ts     float64
	sum    float64
	has    bool
	text   labelText        // the label pairs rendered, made by the first render
	labels []*dto.LabelPair // out as exposed, shared by every scrape (len == cap); see relayout

	buckets []bucket
	out     []mmapstore.LabelPair // output labels, sorted (with pid in the all modes)
	sortKey string
	id      uint32 // in merger.series
}

// dropSeries forgets every series of fa and gives up their ids. The caller bumps the
// merger's stamp, so that no file cache uses those ids again.
func (m *merger) dropSeries(fa *famAgg) {
	for _, sa := range fa.series {
		m.series.drop(sa.id)
	}
	clear(fa.series)
}

// newKeyInfo returns a new zero keyInfo, with its id.
func (m *merger) newKeyInfo() *keyInfo {
	ki, id := m.kinfos.alloc()
	ki.id = id
	return ki
}

// newSeries returns a new zero seriesAgg, with its id.
func (m *merger) newSeries() *seriesAgg {
	sa, id := m.series.alloc()
	sa.id = id
	return sa
}

// deriveKey returns what the merge derives from key k, in ki (zero).
func deriveKey(ki *keyInfo, k *mmapstore.Key) *keyInfo {
	ki.key = k
	if s, ok := strings.CutPrefix(k.Sample, k.Family); ok {
		ki.sfx = s
	} else {
		ki.sfx = "\x00" + k.Sample // a sample not named after its family has no role
	}
	hasLE, hasPID := false, false
	for _, lp := range k.Labels {
		switch lp.Name {
		case "le":
			hasLE = true
			if f, err := strconv.ParseFloat(lp.Value, 64); err == nil {
				ki.le, ki.hasLE = f, true
			}
		case "pid":
			hasPID = true
		}
	}
	// The key's labels are read-only and live as long as the key: share them
	// unless le must go.
	ki.labels = k.Labels
	if hasLE {
		ki.labels = without(k.Labels, "le")
	}
	ki.lkey = labelKey(ki.labels)
	ki.noPID, ki.lkeyNoPID = ki.labels, ki.lkey // the same, without a pid label
	if hasPID {
		ki.noPID = without(ki.labels, "pid")
		ki.lkeyNoPID = labelKey(ki.noPID)
	}
	return ki
}

// without returns a copy of ls without the labels named name.
func without(ls []mmapstore.LabelPair, name string) []mmapstore.LabelPair {
	out := make([]mmapstore.LabelPair, 0, len(ls)-1)
	for _, lp := range ls {
		if lp.Name != name {
			out = append(out, lp)
		}
	}
	return out
}

// labelKey encodes labels as one string (a map and sort key), in one allocation.
func labelKey(ls []mmapstore.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	n := 0
	for _, lp := range ls {
		n += len(lp.Name) + len(lp.Value) + 2
	}
	var b strings.Builder
	b.Grow(n)
	for _, lp := range ls {
		writeLabel(&b, lp)
	}
	return b.String()
}

func writeLabel(b *strings.Builder, lp mmapstore.LabelPair) {
	b.WriteString(lp.Name)
	b.WriteByte(0)
	b.WriteString(lp.Value)
	b.WriteByte(1)
}

func (fa *famAgg) kindFor() seriesKind {
	if fa.typ != typeGauge {
		return kindLabels
	}
	switch fa.mode {
	case GaugeMin, GaugeLiveMin, GaugeMax, GaugeLiveMax, GaugeSum, GaugeLiveSum, GaugeMostRecent, GaugeLiveMostRecent:
		return kindNoPID
	}
	return kindPerFile // all, liveall (and, as in Python, anything unknown)
}

// slot returns the aggregation slot of sample key ki from the file with id.
func (fa *famAgg) slot(m *merger, ki *keyInfo, id string) *seriesAgg {
	kind := fa.kindFor()
	if ki.fa != fa || ki.epoch != fa.epoch || ki.kind != kind {
		ki.fa, ki.epoch, ki.kind, ki.sa, ki.byID = fa, fa.epoch, kind, nil, nil
	}
	if kind != kindPerFile && ki.sa != nil {
		return ki.sa
	}
	if kind == kindPerFile {
		if sa := ki.byID[id]; sa != nil {
			return sa
		}
	}
	sk := seriesKey{labels: ki.lkey}
	out := ki.labels
	switch kind {
	case kindNoPID:
		sk.labels, out = ki.lkeyNoPID, ki.noPID
	case kindPerFile:
		sk = seriesKey{labels: ki.lkeyNoPID, pid: id}
		out = append(slices.Clone(ki.noPID), mmapstore.LabelPair{Name: "pid", Value: id})
		slices.SortFunc(out, func(a, b mmapstore.LabelPair) int { return cmp.Compare(a.Name, b.Name) })
	}
	sa := fa.series[sk]
	if sa == nil {
		sa = m.newSeries()
		sa.out = out
		// The labels encoded (for kindPerFile, with the pid); sa.labels are made by
		// relayout, as the family is now dirty.
		sa.sortKey = sk.labels
		if kind == kindPerFile {
			sa.sortKey = labelKey(out)
		}
		fa.series[sk] = sa
		fa.sorted = append(fa.sorted, sa)
		fa.dirty, fa.textsDue = true, true
	}
	if kind == kindPerFile {
		if ki.byID == nil {
			ki.byID = make(map[string]*seriesAgg)
		}
		ki.byID[id] = sa
	} else {
		ki.sa = sa
	}
	return sa
}

// opFor returns the operation of a sample of the given role in family fa.
func opFor(fa *famAgg, r int) op {
	switch r {
	case roleSum:
		return opSum
	case roleBucket:
		return opBucket
	case roleValue:
		if fa.typ != typeGauge {
			return opAdd
		}
		switch fa.mode {
		case GaugeMin, GaugeLiveMin:
			return opMin
		case GaugeMax, GaugeLiveMax:
			return opMax
		case GaugeSum, GaugeLiveSum:
			return opAdd
		case GaugeMostRecent, GaugeLiveMostRecent:
			return opMostRecent
		}
		return opLast
	}
	return opNone
}

// role of a sample within its family's type.
const (
	roleNone = iota
	roleValue
	roleSum
	roleBucket
)

func role(typ string, ki *keyInfo) int {
	switch typ {
	case typeCounter:
		if ki.sfx == "_total" {
			return roleValue
		}
	case typeGauge:
		if ki.sfx == "" {
			return roleValue
		}
	case typeSummary:
		switch ki.sfx {
		case "_count":
			return roleValue
		case "_sum":
			return roleSum
		}
	case typeHistogram:
		switch {
		case ki.sfx == "_bucket" && ki.hasLE:
			return roleBucket
		case ki.sfx == "_sum":
			return roleSum
		}
	}
	return roleNone
}
