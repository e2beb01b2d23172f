package mmapstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Key is a decoded entry key: the four fields of the JSON array
// [family, sample, labels, help] that client_python writes.
type Key struct {
	Family string
	Sample string
	Labels []LabelPair // sorted by Name (byte order, which is code point order)
	Help   string
}

// LabelPair is one label of a Key.
type LabelPair struct{ Name, Value string }

// EncodeKey returns the bytes of Python's
// json.dumps([family, sample, labels, help], sort_keys=True), where labels maps
// labelNames[i] to labelValues[i]. The order of the names does not matter: they
// are sorted here, by code point as Python does. It panics if the two slices
// differ in length (a programmer mistake).
//
// Python's encoder is reproduced byte for byte because the key is how a reader
// tells series apart: a key that differs in one escape would make the same
// series appear twice once herd and Python files are merged.
func EncodeKey(family, sample string, labelNames, labelValues []string, help string) []byte {
	return AppendKey(nil, family, sample, labelNames, labelValues, help)
}

// AppendKey is EncodeKey appending to dst, for callers that reuse a buffer.
func AppendKey(dst []byte, family, sample string, labelNames, labelValues []string, help string) []byte {
	if len(labelNames) != len(labelValues) {
		panic(fmt.Sprintf("mmapstore: %d label names but %d values", len(labelNames), len(labelValues)))
	}
	// Sort an index instead of the caller's slices; a stack array covers the
	// usual handful of labels without allocating.
	var small [16]int
	idx := small[:0]
	if len(labelNames) > len(small) {
		idx = make([]int, 0, len(labelNames))
	}
	for i := range labelNames {
		idx = append(idx, i)
	}
	if len(idx) > 1 {
		// Insertion sort: n is tiny and sort.Slice would allocate a closure.
		for i := 1; i < len(idx); i++ {
			for j := i; j > 0 && labelNames[idx[j]] < labelNames[idx[j-1]]; j-- {
				idx[j], idx[j-1] = idx[j-1], idx[j]
			}
		}
	}
	dst = append(dst, '[')
	dst = appendJSONString(dst, family)
	dst = append(dst, ", "...)
	dst = appendJSONString(dst, sample)
	dst = append(dst, ", {"...)
	for n, i := range idx {
		if n > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendJSONString(dst, labelNames[i])
		dst = append(dst, ": "...)
		dst = appendJSONString(dst, labelValues[i])
	}
	dst = append(dst, "}, "...)
	dst = appendJSONString(dst, help)
	dst = append(dst, ']')
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s the way Python's json.dumps does with its default
// ensure_ascii=True. Invalid UTF-8 (impossible in a Python str) is written as
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is a run of bytes that need no escaping
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default: // other control characters and DEL
				dst = appendU(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			dst = appendU(dst, r1)
			dst = appendU(dst, r2)
		} else {
			dst = appendU(dst, r) // includes utf8.RuneError for invalid bytes
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// ErrBadKey is wrapped by DecodeKey's errors.
var ErrBadKey = errors.New("mmapstore: malformed key")

// DecodeKey parses a key written by EncodeKey or by any client_python version:
// a JSON array of a string, a string, an object of strings and a string. It
// accepts any valid JSON of that shape (whitespace, escapes, raw UTF-8), not
// only Python's exact spelling, but not invalid UTF-8. A label name that occurs twice keeps its last
// value, as a Python dict would.
func DecodeKey(b []byte) (Key, error) {
	var d keyDecoder
	return d.decode(string(b))
}

// keyDecoder decodes keys. It reuses its buffers from key to key; the zero
// value is ready to use.
type keyDecoder struct {
	s      string
	i      int
	labels []LabelPair // the key's labels as parsed, before they are copied out
	esc    []byte      // an escaped string being unescaped
	// With intern (a Reader's decoder), families, help texts and label names,
	// which repeat from key to key, are shared: one string for all the keys
	// that have it, which a consumer comparing them finds equal at once (same
	// pointer), and a key keeps no other key's bytes alive. prev is the last key
	// decoded, checked first: consecutive keys usually share them all.
	intern bool
	names  map[string]string
	prev   Key
	lslab  []LabelPair // where an interning decoder allocates keys' labels, a batch at a time
}

// maxInterned bounds keyDecoder.names; past it the map starts over (strings
// interned so far stay valid, they are only no longer shared with new keys).
const maxInterned = 1 << 12

// share returns the shared copy of s, a substring of the key being decoded;
// prev is the same field of the previous key.
func (d *keyDecoder) share(s, prev string) string {
	if s == prev {
		return prev
	}
	if t, ok := d.names[s]; ok {
		return t
	}
	if d.names == nil || len(d.names) >= maxInterned {
		d.names = make(map[string]string)
	}
	t := strings.Clone(s)
	d.names[t] = t
	return t
}

// decode parses key s (see DecodeKey). The strings of the Key are substrings
// of s unless they hold escapes: decoding a key that needs no unescaping
// allocates only its Labels. s is kept alive by the Key.
func (d *keyDecoder) decode(s string) (Key, error) {
	if !utf8.ValidString(s) { // as Python's reader, which decodes the key as UTF-8 first
		return Key{}, fmt.Errorf("%w: invalid UTF-8", ErrBadKey)
	}
	d.s, d.i, d.labels = s, 0, d.labels[:0]
	var k Key
	d.ws()
	if !d.lit('[') {
		return Key{}, d.fail("expected '['")
	}
	d.ws()
	var ok bool
	if k.Family, ok = d.str(); !ok || !d.comma() {
		return Key{}, d.fail("bad family")
	}
	if k.Sample, ok = d.str(); !ok || !d.comma() {
		return Key{}, d.fail("bad sample name")
	}
	d.ws()
	if !d.lit('{') {
		return Key{}, d.fail("expected '{'")
	}
	d.ws()
	if !d.lit('}') {
		for {
			d.ws()
			name, ok := d.str()
			if !ok {
				return Key{}, d.fail("bad label name")
			}
			d.ws()
			if !d.lit(':') {
				return Key{}, d.fail("expected ':'")
			}
			d.ws()
			value, ok := d.str()
			if !ok {
				return Key{}, d.fail("bad label value")
			}
			d.labels = append(d.labels, LabelPair{name, value})
			d.ws()
			if d.lit('}') {
				break
			}
			if !d.lit(',') {
				return Key{}, d.fail("expected ',' or '}'")
			}
		}
	}
	if !d.comma() {
		return Key{}, d.fail("expected ','")
	}
	if k.Help, ok = d.str(); !ok {
		return Key{}, d.fail("bad help")
	}
	d.ws()
	if !d.lit(']') {
		return Key{}, d.fail("expected ']'")
	}
	d.ws()
	if d.i != len(d.s) {
		return Key{}, d.fail("trailing bytes")
	}
	ls := sortLabels(d.labels)
	switch n := len(ls); {
	case n == 0:
	case d.intern: // a Reader's: thousands of keys, one allocation for many
		if len(d.lslab) < n {
			d.lslab = make([]LabelPair, max(512, n))
		}
		k.Labels = d.lslab[:n:n]
		copy(k.Labels, ls)
		d.lslab = d.lslab[n:]
	default:
		k.Labels = append(make([]LabelPair, 0, n), ls...)
	}
	if d.intern {
		k.Family = d.share(k.Family, d.prev.Family)
		k.Help = d.share(k.Help, d.prev.Help)
		for i := range k.Labels {
			prev := ""
			if i < len(d.prev.Labels) {
				prev = d.prev.Labels[i].Name
			}
			k.Labels[i].Name = d.share(k.Labels[i].Name, prev)
		}
		d.prev = k
	}
	return k, nil
}

// sortLabels sorts by name, in place, and keeps the last of duplicate names.
// Keys are usually written sorted already, which costs one comparison a label.
func sortLabels(ls []LabelPair) []LabelPair {
	if len(ls) < 2 {
		return ls
	}
	// Stable insertion sort: a key has a handful of labels.
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
	out := ls[:0]
	for i, l := range ls {
		if i+1 < len(ls) && ls[i+1].Name == l.Name {
			continue // a later duplicate wins
		}
		out = append(out, l)
	}
	return out
}

func (d *keyDecoder) fail(msg string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrBadKey, msg, d.i)
}

func (d *keyDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *keyDecoder) lit(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *keyDecoder) comma() bool {
	d.ws()
	if !d.lit(',') {
		return false
	}
	d.ws()
	return true
}

// str parses a JSON string at the current position: a substring of the key
// when it has no escapes, else a new string.
func (d *keyDecoder) str() (string, bool) {
	if !d.lit('"') {
		return "", false
	}
	start := d.i
	// Fast path: no escapes, the usual case for Prometheus names and values.
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			s := d.s[start:d.i]
			d.i++
			return s, true
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.i++
	}
	buf := append(d.esc[:0], d.s[start:d.i]...)
	defer func() { d.esc = buf[:0] }()
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), true
		case c < 0x20:
			return "", false // raw control characters are not valid JSON
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.s) {
			return "", false
		}
		e := d.s[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) && r < 0xdc00 && d.i+6 <= len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
				save := d.i
				d.i += 2
				if r2, ok := d.hex4(); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
					r = utf16.DecodeRune(r, r2)
				} else {
					d.i = save // lone high surrogate; the next escape stands alone
				}
			}
			buf = utf8.AppendRune(buf, r) // lone surrogates become U+FFFD
		default:
			return "", false
		}
	}
	return "", false
}

func (d *keyDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}
