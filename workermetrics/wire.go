package workermetrics

import (
	"encoding/binary"
	"errors"
	"math"
)

// The protobuf wire format, as much of it as client_model's metrics.proto
// needs: snapshots are written and read by hand, without reflection,
// because a scrape reads every worker's snapshot and generic decoding
// costs more than the whole merge.

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var errWire = errors.New("malformed protobuf")

func appendTag(b []byte, field, wt int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wt))
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	return binary.AppendUvarint(appendTag(b, field, wireVarint), v)
}

func appendZigzagField(b []byte, field int, v int64) []byte {
	return appendVarintField(b, field, uint64(v<<1)^uint64(v>>63))
}

func appendDoubleField(b []byte, field int, v float64) []byte {
	return binary.LittleEndian.AppendUint64(appendTag(b, field, wireFixed64), math.Float64bits(v))
}

func appendStringField(b []byte, field int, s string) []byte {
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(s)))
	return append(b, s...)
}

// appendNested appends field as a length-delimited message written by fn
// (field 0: no tag, the length prefix of a delimited stream). The length is
// not known before the message is written: one byte is kept for it, which
// is enough for most messages (under 128 bytes: label pairs, values, most
// series); a longer message is moved behind its longer length.
func appendNested(b []byte, field int, fn func([]byte) []byte) []byte {
	if field > 0 {
		b = appendTag(b, field, wireBytes)
	}
	start := len(b)
	b = fn(append(b, 0))
	n := len(b) - start - 1
	if n < 0x80 {
		b[start] = byte(n)
		return b
	}
	var lenBuf [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(lenBuf[:], uint64(n))
	b = append(b, lenBuf[:l-1]...)
	copy(b[start+l:], b[start+1:start+1+n])
	copy(b[start:], lenBuf[:l])
	return b
}

// wireReader reads the fields of one message.
type wireReader struct {
	b   []byte
	err error
}

// next reads the next field's number and wire type; ok is false at the end
// of the message or on an error (r.err).
func (r *wireReader) next() (field, wt int, ok bool) {
	if len(r.b) == 0 || r.err != nil {
		return 0, 0, false
	}
	v := r.varint()
	if r.err != nil {
		return 0, 0, false
	}
	if v>>3 == 0 || v>>3 > math.MaxInt32 {
		r.err = errWire
		return 0, 0, false
	}
	return int(v >> 3), int(v & 7), true
}

func (r *wireReader) varint() uint64 {
	if len(r.b) > 0 && r.b[0] < 0x80 { // most tags and lengths
		v := uint64(r.b[0])
		r.b = r.b[1:]
		return v
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) zigzag() int64 {
	v := r.varint()
	return int64(v>>1) ^ -int64(v&1)
}

func (r *wireReader) fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *wireReader) double() float64 { return math.Float64frombits(r.fixed64()) }

func (r *wireReader) bytes() []byte {
	n := r.varint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// fields reads r's message to its end, handing each field to fn, which
// reads or skips it from r (a field of the wrong wire type leaves r
// failed). It returns r's error; a malformed message also fails parent,
// the reader of the message it is nested in (nil: none).
func (r *wireReader) fields(parent *wireReader, fn func(field, wt int)) error {
	for {
		field, wt, ok := r.next()
		if !ok {
			break
		}
		fn(field, wt)
	}
	if r.err != nil && parent != nil {
		parent.fail()
	}
	return r.err
}

// skip passes over a field of wire type wt that is not read. On a reader
// that has failed it does nothing but leave it failed.
func (r *wireReader) skip(wt int) {
	switch wt {
	case wireVarint:
		r.varint()
	case wireFixed64:
		r.fixed64()
	case wireBytes:
		r.bytes()
	case wireFixed32:
		if len(r.b) < 4 {
			r.fail()
			return
		}
		r.b = r.b[4:]
	default:
		r.fail()
	}
}

// expect checks that a known field has the wire type its type needs.
func (r *wireReader) expect(wt, want int) bool {
	if wt != want {
		r.fail()
		return false
	}
	return true
}

func (r *wireReader) fail() {
	if r.err == nil {
		r.err = errWire
	}
	r.b = nil
}
