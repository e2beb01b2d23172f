package workermetrics

import (
	dto "github.com/prometheus/client_model/go"
)

// The value messages of a Metric (Gauge, Counter, Untyped, Summary,
// Histogram and theirs), decoded by hand like the rest of a snapshot.
// Exemplars and created timestamps are skipped. Each decoder fails its
// parent reader on a malformed message.

// decodeValue reads a Gauge, Counter or Untyped message's value.
func decodeValue(b []byte, parent *wireReader) float64 {
	v := 0.0
	r := wireReader{b: b}
	r.fields(parent, func(field, wt int) {
		if field == 1 && r.expect(wt, wireFixed64) {
			v = r.double()
		} else {
			r.skip(wt) // exemplar, created timestamp
		}
	})
	return v
}

func decodeSummary(b []byte, parent *wireReader) *dto.Summary {
	s := &dto.Summary{}
	r := wireReader{b: b}
	r.fields(parent, func(field, wt int) {
		switch {
		case field == 1 && r.expect(wt, wireVarint):
			s.SampleCount = new(r.varint())
		case field == 2 && r.expect(wt, wireFixed64):
			s.SampleSum = new(r.double())
		case field == 3 && r.expect(wt, wireBytes):
			q := &dto.Quantile{}
			qr := wireReader{b: r.bytes()}
			qr.fields(&r, func(f, w int) {
				switch {
				case f == 1 && qr.expect(w, wireFixed64):
					q.Quantile = new(qr.double())
				case f == 2 && qr.expect(w, wireFixed64):
					q.Value = new(qr.double())
				default:
					qr.skip(w)
				}
			})
			s.Quantile = append(s.Quantile, q)
		default:
			r.skip(wt) // created timestamp; or r failed: a no-op
		}
	})
	return s
}

func decodeHistogram(b []byte, parent *wireReader) *dto.Histogram {
	h := &dto.Histogram{}
	// The classic buckets in one allocation of each kind.
	var buckets []dto.Bucket
	var counts []uint64
	var bounds []float64
	if n := countField(b, 3); n > 0 {
		buckets, counts, bounds = make([]dto.Bucket, n), make([]uint64, n), make([]float64, n)
		h.Bucket = make([]*dto.Bucket, 0, n)
	}
	r := wireReader{b: b}
	r.fields(parent, func(field, wt int) {
		switch field {
		case 1, 7:
			if r.expect(wt, wireVarint) {
				v := r.varint()
				if field == 1 {
					h.SampleCount = &v
				} else {
					h.ZeroCount = &v
				}
			}
		case 2, 4, 6, 8:
			if r.expect(wt, wireFixed64) {
				v := r.double()
				switch field {
				case 2:
					h.SampleSum = &v
				case 4:
					h.SampleCountFloat = &v
				case 6:
					h.ZeroThreshold = &v
				case 8:
					h.ZeroCountFloat = &v
				}
			}
		case 3:
			if r.expect(wt, wireBytes) {
				i := len(h.Bucket)
				if i == len(buckets) {
					r.fail() // countField and this loop disagree: never
					break
				}
				h.Bucket = append(h.Bucket, decodeBucket(r.bytes(), &r, &buckets[i], &counts[i], &bounds[i]))
			}
		case 5:
			if r.expect(wt, wireVarint) {
				s := int32(r.zigzag())
				h.Schema = &s
			}
		case 9, 12:
			if r.expect(wt, wireBytes) {
				sp := decodeSpan(r.bytes(), &r)
				if field == 9 {
					h.NegativeSpan = append(h.NegativeSpan, sp)
				} else {
					h.PositiveSpan = append(h.PositiveSpan, sp)
				}
			}
		case 10, 13:
			dst := &h.NegativeDelta
			if field == 13 {
				dst = &h.PositiveDelta
			}
			*dst = readRepeated(&r, wt, wireVarint, *dst, (*wireReader).zigzag)
		case 11, 14:
			dst := &h.NegativeCount
			if field == 14 {
				dst = &h.PositiveCount
			}
			*dst = readRepeated(&r, wt, wireFixed64, *dst, (*wireReader).double)
		default:
			r.skip(wt) // created timestamp, exemplars
		}
	})
	return h
}

// readRepeated reads one element of a repeated scalar field, or all of them
// when they come packed.
func readRepeated[T any](r *wireReader, wt, elem int, dst []T, read func(*wireReader) T) []T {
	if wt == elem {
		return append(dst, read(r))
	}
	if !r.expect(wt, wireBytes) {
		return dst
	}
	pr := wireReader{b: r.bytes()}
	for len(pr.b) > 0 && pr.err == nil {
		dst = append(dst, read(&pr))
	}
	if pr.err != nil {
		r.fail()
	}
	return dst
}

// countField counts the occurrences of a length-delimited field in a
// message (0 if the message is malformed: decoding will say so).
func countField(b []byte, field int) int {
	n := 0
	r := wireReader{b: b}
	err := r.fields(nil, func(f, wt int) {
		if f == field && wt == wireBytes {
			n++
		}
		r.skip(wt)
	})
	if err != nil {
		return 0
	}
	return n
}

// decodeBucket decodes a Bucket message into bk, with its count and upper
// bound stored in *count and *bound.
func decodeBucket(b []byte, parent *wireReader, bk *dto.Bucket, count *uint64, bound *float64) *dto.Bucket {
	r := wireReader{b: b}
	r.fields(parent, func(field, wt int) {
		switch {
		case field == 1 && r.expect(wt, wireVarint):
			*count = r.varint()
			bk.CumulativeCount = count
		case field == 2 && r.expect(wt, wireFixed64):
			*bound = r.double()
			bk.UpperBound = bound
		case field == 4 && r.expect(wt, wireFixed64):
			bk.CumulativeCountFloat = new(r.double())
		default:
			r.skip(wt) // exemplar; or r failed: a no-op
		}
	})
	return bk
}

func decodeSpan(b []byte, parent *wireReader) *dto.BucketSpan {
	sp := &dto.BucketSpan{}
	r := wireReader{b: b}
	r.fields(parent, func(field, wt int) {
		switch {
		case field == 1 && r.expect(wt, wireVarint):
			sp.Offset = new(int32(r.zigzag()))
		case field == 2 && r.expect(wt, wireVarint):
			sp.Length = new(uint32(r.varint()))
		default:
			r.skip(wt) // or r failed: a no-op
		}
	})
	return sp
}
