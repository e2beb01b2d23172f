package workermetrics

import (
	"encoding/binary"
	"math"

	dto "github.com/prometheus/client_model/go"
)

// A family whose message changed since the worker's last snapshot usually
// changed in its values only: the same series, with the same labels, in
// the same order. revalue decodes such a message against the last one:
// by the places of the values in the last message, when the message has
// the same length and every other byte equal; else by walking both side by
// side, which requires every field to have the same number and wire type
// and every byte but the values' to be equal, and records the places. Then
// the new family is the cached one with new values, and its label sets,
// strings, checks and (per-worker families) Metric messages are the cached
// ones. The values take one allocation of each kind per family, none per
// series. Anything else (a label, a series or a timestamp changed,
// summaries, float or native histograms, per-worker histograms) makes it
// give up, and the family is decoded in full.

// revalueFamily decodes msg, whose last version old decoded to f, in which
// only values may have changed, and appends where msg has its values to
// *lay. ok is false if anything else changed (or msg is malformed): the
// caller decodes it in full.
func revalueFamily(msg, old []byte, f *family, lay *[]valueAt) (_ family, ok bool) {
	out, ok := freshValues(f)
	if !ok {
		return family{}, false
	}
	w := walk{msg: msg, lay: lay}
	nr, or := wireReader{b: msg}, wireReader{b: old}
	i, n := 0, len(f.sets)
	for {
		nf, nwt, nok, of, owt, ook := nextPair(&nr, &or)
		if !nok || !ook || nf != of || nwt != owt {
			if nok || ook || nr.err != nil || or.err != nil {
				return family{}, false
			}
			break
		}
		if nf == 4 && nwt == wireBytes {
			if i == n || !w.metric(nr.bytes(), or.bytes(), &out, i) {
				return family{}, false
			}
			i++
			continue
		}
		if !sameField(&nr, &or, nwt) {
			return family{}, false
		}
	}
	if i != n {
		return family{}, false
	}
	return out, true
}

// freshValues returns f with storage of its own for the values (zero),
// which the caller fills in. A per-worker family keeps the Metric messages
// of f, which have its labels and timestamps (the caller checks they did
// not change), with its values in vals (see family.metrics). False if f
// has values that only a full decode reads.
func freshValues(f *family) (family, bool) {
	out := *f
	if f.vals != nil {
		out.vals = make([]float64, len(f.sets))
	}
	if f.hists != nil && !freshHists(&out, f.hists) {
		return family{}, false
	}
	if f.perWorker {
		switch f.mf.GetType() {
		case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		default:
			return family{}, false
		}
		if f.vals == nil || len(f.mf.Metric) != len(f.vals) {
			return family{}, false
		}
	}
	out.oldValues = f.perWorker
	return out, true
}

// freshHists gives out histograms of their own for the values: those of
// hists with the counts zeroed, the bounds shared (they are read-only and
// the walk checks they did not change). False if a histogram is native or
// has float counts.
func freshHists(out *family, hists []hist) bool {
	total := 0
	for i := range hists {
		if hists[i].native != nil || hists[i].floats {
			return false
		}
		total += len(hists[i].cum)
	}
	out.hists = make([]hist, len(hists))
	cum := make([]float64, total)
	for i := range hists {
		h := &hists[i]
		out.hists[i] = hist{bounds: h.bounds}
		if k := len(h.cum); h.cum != nil {
			out.hists[i].cum = cum[:k:k]
			cum = cum[k:]
		}
	}
	return true
}

// metrics returns the Metric messages of a per-worker family as served: a
// family decoded by value gets them made with its values at every call.
// Neither f nor what they point to may change.
func (f *family) metrics() []*dto.Metric {
	if !f.oldValues {
		return f.mf.Metric
	}
	return withValues(f.mf, f.vals)
}

// withValues returns the Metric messages of a per-worker family of
// counters, gauges or untyped, old, with their values replaced by vals,
// of the same length.
func withValues(old *dto.MetricFamily, vals []float64) []*dto.Metric {
	n := len(old.Metric)
	out := make([]*dto.Metric, n)
	ms := make([]dto.Metric, n)
	var counters []dto.Counter
	var gauges []dto.Gauge
	var untyped []dto.Untyped
	switch old.GetType() {
	case dto.MetricType_COUNTER:
		counters = make([]dto.Counter, n)
	case dto.MetricType_GAUGE:
		gauges = make([]dto.Gauge, n)
	default:
		untyped = make([]dto.Untyped, n)
	}
	for i, om := range old.Metric {
		m := &ms[i]
		m.Label, m.TimestampMs = om.Label, om.TimestampMs
		switch {
		case counters != nil:
			m.Counter = &counters[i]
			m.Counter.Value = &vals[i]
		case gauges != nil:
			m.Gauge = &gauges[i]
			m.Gauge.Value = &vals[i]
		default:
			m.Untyped = &untyped[i]
			m.Untyped.Value = &vals[i]
		}
		out[i] = m
	}
	return out
}

// nextPair reads the next field of both readers.
func nextPair(nr, or *wireReader) (nf, nwt int, nok bool, of, owt int, ook bool) {
	nf, nwt, nok = nr.next()
	of, owt, ook = or.next()
	return
}

// sameField skips the current field of both readers, of wire type wt, and
// reports whether its bytes are equal.
func sameField(nr, or *wireReader, wt int) bool {
	nb, ob := nr.b, or.b
	nr.skip(wt)
	or.skip(wt)
	if nr.err != nil || or.err != nil {
		return false
	}
	return string(nb[:len(nb)-len(nr.b)]) == string(ob[:len(ob)-len(or.b)])
}

// walk records where a family's message has its values, as it reads them.
type walk struct {
	msg []byte // the family's message, which every reader reads a part of
	lay *[]valueAt
}

// at records that r's next bytes are a value of series i.
func (w *walk) at(r *wireReader, kind valueKind, i, bucket int) {
	*w.lay = append(*w.lay, valueAt{off: uint32(cap(w.msg) - cap(r.b)), kind: kind, series: uint32(i), bucket: uint32(bucket)})
}

// metric reads the values of series i from its Metric message b, whose
// last version is old.
func (w *walk) metric(b, old []byte, out *family, i int) bool {
	nr, or := wireReader{b: b}, wireReader{b: old}
	for {
		nf, nwt, nok, of, owt, ook := nextPair(&nr, &or)
		if !nok || !ook || nf != of || nwt != owt {
			return !nok && !ook && nr.err == nil && or.err == nil
		}
		switch {
		case (nf == 2 || nf == 3 || nf == 5) && nwt == wireBytes:
			if !w.scalar(nr.bytes(), or.bytes(), out, i) {
				return false
			}
		case nf == 7 && nwt == wireBytes:
			if out.hists == nil || !w.hist(nr.bytes(), or.bytes(), &out.hists[i], i) {
				return false
			}
		case nf == 4:
			return false // a summary: decoded in full
		default: // labels, timestamp and what the decoder skips
			if !sameField(&nr, &or, nwt) {
				return false
			}
		}
	}
}

// scalar reads a Gauge, Counter or Untyped message's value into
// out.vals[i], if out has vals (0 if it has none, as decodeValue).
func (w *walk) scalar(b, old []byte, out *family, i int) bool {
	nr, or := wireReader{b: b}, wireReader{b: old}
	for {
		nf, nwt, nok, of, owt, ook := nextPair(&nr, &or)
		if !nok || !ook || nf != of || nwt != owt {
			return !nok && !ook && nr.err == nil && or.err == nil
		}
		if nf == 1 && nwt == wireFixed64 {
			w.at(&nr, valueScalar, i, 0)
			v := nr.double()
			or.fixed64()
			if out.vals != nil {
				out.vals[i] = v
			}
		} else if !sameField(&nr, &or, nwt) {
			return false
		}
	}
}

// hist reads a classic Histogram message's count, sum and bucket counts
// into h, series i, whose bounds and number of buckets are those of old.
func (w *walk) hist(b, old []byte, h *hist, i int) bool {
	nr, or := wireReader{b: b}, wireReader{b: old}
	k := 0
	for {
		nf, nwt, nok, of, owt, ook := nextPair(&nr, &or)
		if !nok || !ook || nf != of || nwt != owt {
			return !nok && !ook && nr.err == nil && or.err == nil && k == len(h.cum)
		}
		switch {
		case nf == 1 && nwt == wireVarint:
			w.at(&nr, valueCount, i, 0)
			h.count = float64(nr.varint())
			or.varint()
		case nf == 2 && nwt == wireFixed64:
			w.at(&nr, valueSum, i, 0)
			h.sum = nr.double()
			or.fixed64()
		case nf == 3 && nwt == wireBytes:
			if k == len(h.cum) || !w.bucket(nr.bytes(), or.bytes(), &h.cum[k], i, k) {
				return false
			}
			k++
		case nf == 4 || nf > 4 && nf <= 14:
			return false // float counts, native buckets: decoded in full
		default: // created timestamp, exemplars
			if !sameField(&nr, &or, nwt) {
				return false
			}
		}
	}
}

// bucket reads bucket k's count into *count; its upper bound must be the
// old one.
func (w *walk) bucket(b, old []byte, count *float64, i, k int) bool {
	nr, or := wireReader{b: b}, wireReader{b: old}
	for {
		nf, nwt, nok, of, owt, ook := nextPair(&nr, &or)
		if !nok || !ook || nf != of || nwt != owt {
			return !nok && !ook && nr.err == nil && or.err == nil
		}
		switch {
		case nf == 1 && nwt == wireVarint:
			w.at(&nr, valueBucket, i, k)
			*count = float64(nr.varint())
			or.varint()
		case nf == 4:
			return false // a float count
		default: // the upper bound, exemplars
			if !sameField(&nr, &or, nwt) {
				return false
			}
		}
	}
}

// valueAt is where a family's message has one value.
type valueAt struct {
	off    uint32 // the value's offset in the message
	kind   valueKind
	series uint32
	bucket uint32 // valueBucket: which
}

type valueKind uint8

const (
	valueScalar valueKind = iota // a counter's, gauge's or untyped's value: fixed64
	valueCount                   // a histogram's count: varint
	valueSum                     // a histogram's sum: fixed64
	valueBucket                  // a histogram bucket's count: varint
)

// readValues reads the values of msg into out (from freshValues) at the
// places lay says the old message, which it checks msg equals everywhere
// else, has them. Values of the same width at the same places, and every
// other byte equal, make msg read as old does but for the values; false
// if they are not.
func readValues(msg, old []byte, lay []valueAt, out *family) bool {
	if len(msg) != len(old) {
		return false
	}
	prev := 0
	for _, v := range lay {
		off := int(v.off)
		if off < prev || off >= len(msg) || string(msg[prev:off]) != string(old[prev:off]) {
			return false
		}
		switch v.kind {
		case valueScalar, valueSum:
			if off+8 > len(msg) {
				return false
			}
			x := math.Float64frombits(binary.LittleEndian.Uint64(msg[off:]))
			prev = off + 8
			if v.kind == valueSum {
				out.hists[v.series].sum = x
			} else if out.vals != nil {
				out.vals[v.series] = x
			}
		default:
			c, n := binary.Uvarint(msg[off:])
			if _, m := binary.Uvarint(old[off:]); n <= 0 || n != m {
				return false
			}
			prev = off + n
			if v.kind == valueCount {
				out.hists[v.series].count = float64(c)
			} else {
				out.hists[v.series].cum[v.bucket] = float64(c)
			}
		}
	}
	return string(msg[prev:]) == string(old[prev:])
}

// revalue decodes the family at position i of the snapshot, msg, against
// the cached one at that position, which it replaces if ok: by the places
// of the values in the cached message if only values changed and kept
// their widths, else by walking both messages.
func (d *decoder) revalue(msg []byte, i int) (family, bool) {
	if i >= len(d.cache) {
		return family{}, false
	}
	c := &d.cache[i]
	if c.layout != nil {
		out, ok := freshValues(&c.f)
		if ok && readValues(msg, c.msg, c.layout, &out) {
			copy(c.msg, msg) // of the same length
			c.f = out
			return d.reuse(out), true
		}
	}
	lay := c.layout[:0]
	f, ok := revalueFamily(msg, c.msg, &c.f, &lay)
	if !ok {
		// The walk wrote over the places of c.msg's values; if msg then
		// fails to decode, c stays.
		c.layout = nil
		return family{}, false
	}
	c.msg, c.f, c.layout = append(c.msg[:0], msg...), f, lay
	return d.reuse(f), true
}
