package workermetrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// describeFamilies is what the merge takes from decoded families: their
// series as served, their label sets' identities, why they are dropped.
func describeFamilies(fs []family) string {
	var b strings.Builder
	for i := range fs {
		f := &fs[i]
		fmt.Fprintf(&b, "drop=%d perWorker=%v sets=", f.drop, f.perWorker)
		for _, s := range f.sets {
			fmt.Fprintf(&b, "%q bad=%v;", s.key, s.bad)
		}
		b.WriteString("\n")
		b.WriteString(prototext.Format(served(f)))
	}
	return b.String()
}

// randomValue is one of the values that need care: NaN, infinities, -0,
// integers beyond 2^53.
func randomValue(r *rand.Rand) float64 {
	values := []float64{0, math.Copysign(0, -1), 1, -1, 2.5, 1e-7, 1e21, math.NaN(), math.Inf(1), math.Inf(-1), float64(1 << 53), r.Float64() * 1e6}
	return values[r.IntN(len(values))]
}

// randomCount grows a count, sometimes past a varint width.
func randomCount(r *rand.Rand, c uint64) uint64 {
	switch r.IntN(4) {
	case 0:
		return c
	case 1:
		return c + 1<<uint(7*(1+r.IntN(6)))
	}
	return c + uint64(r.IntN(200))
}

// changeValues changes the values of every series of mf, as a worker's
// next snapshot does: labels, order and bounds stay.
func changeValues(r *rand.Rand, mf *dto.MetricFamily) {
	for _, m := range mf.Metric {
		switch {
		case m.Counter != nil:
			m.Counter.Value = proto.Float64(math.Abs(randomValue(r)))
		case m.Gauge != nil:
			m.Gauge.Value = proto.Float64(randomValue(r))
		case m.Untyped != nil:
			m.Untyped.Value = proto.Float64(randomValue(r))
		case m.Summary != nil:
			m.Summary.SampleCount = proto.Uint64(randomCount(r, m.Summary.GetSampleCount()))
			m.Summary.SampleSum = proto.Float64(randomValue(r))
			for _, q := range m.Summary.Quantile {
				q.Value = proto.Float64(randomValue(r))
			}
		case m.Histogram != nil:
			h := m.Histogram
			h.SampleSum = proto.Float64(randomValue(r))
			c := uint64(0)
			for _, bk := range h.Bucket {
				c = randomCount(r, max(c, bk.GetCumulativeCount()))
				bk.CumulativeCount = proto.Uint64(c)
			}
			h.SampleCount = proto.Uint64(randomCount(r, max(c, h.GetSampleCount())))
			if h.ZeroCount != nil {
				h.ZeroCount = proto.Uint64(randomCount(r, h.GetZeroCount()))
			}
			for i := range h.PositiveDelta {
				h.PositiveDelta[i] += int64(r.IntN(3))
			}
		}
	}
}

// changeStructure makes one change that is not a value's: a label, a
// series added or removed, a timestamp, a bucket bound, float counts, a
// family removed.
func changeStructure(r *rand.Rand, fams []*dto.MetricFamily) []*dto.MetricFamily {
	mf := fams[r.IntN(len(fams))]
	if len(mf.Metric) == 0 {
		return fams[1:]
	}
	i := r.IntN(len(mf.Metric))
	m := mf.Metric[i]
	switch r.IntN(7) {
	case 0: // a label value changes, or a label is added
		if len(m.Label) > 0 {
			m.Label[0].Value = proto.String(m.Label[0].GetValue() + "x")
		} else {
			m.Label = []*dto.LabelPair{{Name: proto.String("new"), Value: proto.String("v")}}
		}
	case 1: // a series goes away
		mf.Metric = append(mf.Metric[:i], mf.Metric[i+1:]...)
	case 2: // a series is added, maybe one already there (invalid)
		extra := proto.Clone(m).(*dto.Metric)
		if r.IntN(2) == 0 {
			extra.Label = append(extra.Label, &dto.LabelPair{Name: proto.String("zz"), Value: proto.String(fmt.Sprint(r.IntN(3)))})
		}
		mf.Metric = append(mf.Metric, extra)
	case 3: // a timestamp comes or goes
		if m.TimestampMs == nil {
			m.TimestampMs = proto.Int64(1700000000123)
		} else {
			m.TimestampMs = nil
		}
	case 4: // a bucket's bound moves, or a bucket goes away
		if h := m.Histogram; h != nil && len(h.Bucket) > 0 {
			if r.IntN(2) == 0 {
				h.Bucket[0].UpperBound = proto.Float64(h.Bucket[0].GetUpperBound() / 2)
			} else {
				h.Bucket = h.Bucket[1:]
			}
		} else {
			m.Label = nil
		}
	case 5: // float counts
		if h := m.Histogram; h != nil {
			h.SampleCountFloat = proto.Float64(float64(h.GetSampleCount()) + 0.5)
		} else if m.Counter != nil {
			m.Gauge = &dto.Gauge{Value: proto.Float64(1)} // and a second value: invalid
		}
	case 6: // the family goes away: every later one moves
		j := r.IntN(len(fams))
		fams = append(fams[:j:j], fams[j+1:]...)
	}
	return fams
}

// TestRevalueMatchesFullDecode decodes a worker's successive snapshots with
// one decoder, as the master does, their values changing at every one and
// their structure at some, and checks each decode against a fresh
// decoder's full decode. Values-only changes take the value-only paths (a
// family read by the places of its values in its last message, or by
// walking both messages when a value's width changed or the places are not
// known yet); anything else falls back to a full decode. The families of the snapshot before must not change.
func TestRevalueMatchesFullDecode(t *testing.T) {
	rich := richFamilies(t)
	withoutExemplars(rich)
	byPlace, byWalk, full := 0, 0, 0
	for seed := range 60 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		base := randomFamilies(r)
		if seed%4 == 0 {
			for _, mf := range rich {
				base = append(base, proto.Clone(mf).(*dto.MetricFamily))
			}
		}
		d := testDecoder()
		var prev []family
		prevText := ""
		for round := range 12 {
			fams := make([]*dto.MetricFamily, len(base))
			for i, mf := range base {
				fams[i] = proto.Clone(mf).(*dto.MetricFamily)
				if round > 0 {
					changeValues(r, fams[i])
				}
			}
			if round > 0 && len(fams) > 0 && r.IntN(3) == 0 {
				fams = changeStructure(r, fams)
			}
			snap := appendSnapshot(nil, uint64(round+1), fams)
			// What the value-only path makes of each changed family.
			body := snap[headerSize:]
			for i := 0; len(body) > 0; i++ {
				msg, rest := nextDelimited(t, body)
				body = rest
				if i >= len(d.cache) || string(d.cache[i].msg) == string(msg) {
					continue
				}
				c := &d.cache[i]
				out, ok := freshValues(&c.f)
				switch {
				case ok && c.layout != nil && readValues(msg, c.msg, c.layout, &out):
					byPlace++
				case ok && func() bool { _, ok := revalueFamily(msg, c.msg, &c.f, new([]valueAt)); return ok }():
					byWalk++
				default:
					full++
				}
			}
			if r.IntN(3) == 0 {
				// A snapshot with a byte changed: an error, or whatever it
				// decodes to; the decoder must decode the next one right.
				bad := append([]byte(nil), snap[headerSize:]...)
				bad[r.IntN(len(bad))] = byte(r.IntN(256))
				d.decodeSnapshot(bad)
			}
			got, want := decodeBoth(t, d, snap)
			if g, w := describeFamilies(got), describeFamilies(want); g != w {
				t.Fatalf("seed %d round %d: the cached decoder gives\n%s\nwant\n%s", seed, round, g, w)
			}
			for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics)} {
				if g, w := rendered(got, format), rendered(want, format); g != w {
					t.Fatalf("seed %d round %d: the cached decoder's families render as\n%s\nwant\n%s", seed, round, g, w)
				}
			}
			if prev != nil && describeFamilies(prev) != prevText {
				t.Fatalf("seed %d round %d: the last snapshot's families changed", seed, round)
			}
			prev, prevText = got, describeFamilies(got)
			base = fams
		}
	}
	t.Logf("changed families: %d read by the places of their values, %d by walking them, %d decoded in full", byPlace, byWalk, full)
	if byPlace < 1000 || byWalk < 200 || full < 200 {
		t.Fatalf("changed families: %d read by the places of their values, %d by walking them, %d decoded in full: the test does not exercise all three", byPlace, byWalk, full)
	}
}

// rendered is the scrape of one worker's families, as the handler renders
// it.
func rendered(fams []family, format expfmt.Format) string {
	m := &merger{perWorker: DefaultPerWorker}
	m.reserve(nil)
	served, _ := m.mergeServed([]source{{worker: "0a", fams: fams, perWorker: true}}, nil)
	r := newRenderer(nil, format)
	for i := range served {
		if !r.family(&served[i]) {
			r.encode(served[i].dto())
		}
	}
	return string(r.b)
}

// nextDelimited splits the first delimited message off a snapshot body.
func nextDelimited(t *testing.T, body []byte) (msg, rest []byte) {
	t.Helper()
	r := wireReader{b: body}
	l := r.varint()
	if r.err != nil || l > uint64(len(r.b)) {
		t.Fatal("bad snapshot body")
	}
	return r.b[:l], r.b[l:]
}

// FuzzRevalue decodes two arbitrary snapshot bodies of one worker in turn
// with one decoder, as the master does, and the second again with a fresh
// one: both must fail, or decode to the same families. Its seeds are whole
// snapshots, slow to minimize: fuzz it with -fuzzminimizetime 0.
func FuzzRevalue(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		fams := randomFamilies(r)
		first := appendSnapshot(nil, 1, fams)
		for _, mf := range fams {
			changeValues(r, mf)
		}
		second := appendSnapshot(nil, 2, fams)
		f.Add(first[headerSize:], second[headerSize:])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		d := testDecoder()
		if _, err := d.decodeSnapshot(first); err != nil {
			return
		}
		got, gotErr := d.decodeSnapshot(second)
		want, wantErr := testDecoder().decodeSnapshot(second)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("the cached decoder's error %v, a fresh one's %v", gotErr, wantErr)
		}
		if gotErr == nil && describeFamilies(got) != describeFamilies(want) {
			t.Fatalf("the cached decoder gives\n%s\nwant\n%s", describeFamilies(got), describeFamilies(want))
		}
	})
}
