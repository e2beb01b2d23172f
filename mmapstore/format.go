package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Layout selects the entry layout of a file. Both have the same header and
// key encoding; they differ only in what follows the key.
type Layout int

const (
	// Current is the layout of client_python 0.18 and later: every entry
	// ends with a float64 value and a float64 timestamp (16 bytes).
	Current Layout = iota
	// Legacy is the layout of client_python 0.4 to 0.17 (Debian 12's
	// python3-prometheus-client 0.16): the entry ends after the float64 value.
	Legacy
)

func (l Layout) String() string {
	switch l {
	case Current:
		return "current"
	case Legacy:
		return "legacy"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// valueBytes is how many bytes follow an entry's padded key.
func (l Layout) valueBytes() int {
	if l == Legacy {
		return 8
	}
	return 16
}

const (
	headerSize  = 8       // int32 used + 4 zero bytes
	initialSize = 1 << 16 // Python's initial file size; ours is reserved, not sparse
	// maxFileSize bounds a file by what the int32 `used` field can count.
	maxFileSize = 1<<31 - 1
	// minEntrySize is the smallest entry: the length, the shortest key
	// ("[]"), its padding and a legacy value.
	minEntrySize = 4 + 2 + 2 + 8
)

// Errors a reader reports for files it skips. They are wrapped with details;
// test with errors.Is.
var (
	ErrEmptyFile   = errors.New("mmapstore: empty file")
	ErrTruncated   = errors.New("mmapstore: truncated file")
	ErrCorrupt     = errors.New("mmapstore: corrupt file")
	ErrUnknownName = errors.New("mmapstore: not a metric file name")
)

// padLen returns the number of spaces after a key of klen bytes: 1 to 8, so
// that the value that follows starts on an 8-byte boundary (an entry starts on
// one, and 4+klen+pad is a multiple of 8). Python always pads, even when
// 4+klen is already a multiple of 8.
func padLen(klen int) int { return 8 - (klen+4)%8 }

// entrySize is the size of a whole entry with a key of klen bytes.
func entrySize(klen int, l Layout) int { return 4 + klen + padLen(klen) + l.valueBytes() }

// appendEntry appends one zero-valued entry.
func appendEntry(dst, key []byte, l Layout) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	for range padLen(len(key)) {
		dst = append(dst, ' ')
	}
	for range l.valueBytes() {
		dst = append(dst, 0)
	}
	return dst
}

// readUsed returns the header's used field, with Python's 0 (a file whose
// header was not written yet) read as an empty file.
// The load is atomic: a writer may be storing it concurrently. data[0] is
// 8-byte aligned (a mapping, or a fresh heap buffer).
func readUsed(data []byte) int {
	u := int(int32(atomic.LoadUint32(usedWord(data))))
	if u == 0 {
		return headerSize
	}
	return u
}

// rawEntry is one entry found by walk: the key bytes and the offset of the
// value (the timestamp, in the current layout, follows it).
type rawEntry struct {
	key      []byte
	valueOff int
}

// walk parses the entries of data[pos:used] in layout l and calls fn (if not
// nil) for each.
// It fails unless every entry is well formed and the walk lands exactly on
// used: that is how the two layouts are told apart, and how corruption shows.
// It never reads outside data[:used]; the caller ensures used <= len(data).
func walk(data []byte, pos, used int, l Layout, fn func(rawEntry) error) error {
	vb := l.valueBytes()
	for pos < used {
		klen, valueOff, end, ok := frame(data, pos, used, vb)
		if !ok {
			return frameError(data, pos, used, vb)
		}
		if fn != nil {
			if err := fn(rawEntry{key: data[pos+4 : pos+4+klen], valueOff: valueOff}); err != nil {
				return err
			}
		}
		pos = end
	}
	return nil
}

// spaces is eight pad bytes, as one little-endian word.
const spaces = 0x2020202020202020

// frame checks the framing of the entry at pos, vb value bytes long, and
// returns the length of its key (which starts at pos+4), the offset of its
// value and where the entry ends; ok is false if it is not well formed:
// a key length that does not fit before used, a key not framed as a JSON list
// ('[' ... ']'; this catches a length off by a few bytes, which would
// otherwise swallow pad spaces, which JSON allows as whitespace), padding that
// is not spaces, or an entry running past used. It never reads outside
// data[:used]. frameError says what is wrong.
func frame(data []byte, pos, used, vb int) (klen, valueOff, end int, ok bool) {
	if used-pos < 4 {
		return 0, 0, 0, false
	}
	klen = int(int32(binary.LittleEndian.Uint32(data[pos:])))
	if klen <= 0 || klen > used-pos {
		return 0, 0, 0, false
	}
	keyStart := pos + 4
	pad := padLen(klen)
	valueOff = keyStart + klen + pad
	end = valueOff + vb
	if end > used || end < 0 {
		return 0, 0, 0, false
	}
	if data[keyStart] != '[' || data[keyStart+klen-1] != ']' {
		return 0, 0, 0, false
	}
	// The pad is the last 1 to 8 bytes of the word before the value (an
	// entry is at least 8 bytes up to its value, so the word is the entry's).
	w := binary.LittleEndian.Uint64(data[valueOff-8 : valueOff])
	if (w^spaces)&(^uint64(0)<<(8*(8-pad))) != 0 {
		return 0, 0, 0, false
	}
	return klen, valueOff, end, true
}

// frameError describes why frame rejects the entry at pos.
func frameError(data []byte, pos, used, vb int) error {
	if used-pos < 4 {
		return fmt.Errorf("%w: %d stray bytes at offset %d", ErrCorrupt, used-pos, pos)
	}
	klen := int(int32(binary.LittleEndian.Uint32(data[pos:])))
	if klen <= 0 || klen > used-pos {
		return fmt.Errorf("%w: key length %d at offset %d", ErrCorrupt, klen, pos)
	}
	keyStart := pos + 4
	valueOff := keyStart + klen + padLen(klen)
	if end := valueOff + vb; end > used || end < 0 {
		return fmt.Errorf("%w: entry at offset %d runs past used (%d)", ErrCorrupt, pos, used)
	}
	if data[keyStart] != '[' || data[keyStart+klen-1] != ']' {
		return fmt.Errorf("%w: key at offset %d is not a JSON list", ErrCorrupt, pos)
	}
	return fmt.Errorf("%w: bad padding at offset %d", ErrCorrupt, pos)
}

// layoutProbe is how many entries guessLayout walks in each layout.
const layoutProbe = 4

// guessLayout looks at the first entries of data[pos:used] (at most
// layoutProbe of them, framing only) in both layouts and returns the layout to
// parse the whole in first, and whether the other one is still possible (its
// probe walked cleanly too). It fails only when neither layout frames these
// entries, and then with the error that detectLayout gives.
//
// Parsing the whole in guess and, if that fails and alt is true, in the other
// layout, decides exactly as detectLayout: Current is chosen when it walks and
// its keys decode (a tie goes to Current), Legacy when Current fails and
// Legacy walks and decodes; a file that neither parses cleanly is corrupt. The
// probe only orders the attempts: a layout whose first entries do not frame
// cannot walk the whole.
func guessLayout(data []byte, pos, used int) (guess Layout, alt bool, err error) {
	errC := probe(data, pos, used, Current.valueBytes())
	errL := probe(data, pos, used, Legacy.valueBytes())
	switch {
	case errC == nil:
		return Current, errL == nil, nil
	case errL == nil:
		return Legacy, false, nil
	}
	return Current, false, errC
}

// probe checks the framing of the first layoutProbe entries of data[pos:used].
func probe(data []byte, pos, used, vb int) error {
	for range layoutProbe {
		if pos >= used {
			break
		}
		_, _, end, ok := frame(data, pos, used, vb)
		if !ok {
			return frameError(data, pos, used, vb)
		}
		pos = end
	}
	return nil
}

// detectLayout finds the layout in which data[pos:used] walks cleanly. The
// walk alone (lengths, '[' ... ']' framing, space padding, landing exactly on
// used) settles it in practice; only if both layouts walk cleanly are the keys
// decoded to break the tie. prefer wins a complete tie.
func detectLayout(data []byte, pos, used int, prefer Layout) (Layout, error) {
	other := Legacy
	if prefer == Legacy {
		other = Current
	}
	errP := walk(data, pos, used, prefer, nil)
	errO := walk(data, pos, used, other, nil)
	switch {
	case errP == nil && errO == nil:
		decodes := func(e rawEntry) error {
			_, err := DecodeKey(e.key)
			return err
		}
		if walk(data, pos, used, prefer, decodes) != nil && walk(data, pos, used, other, decodes) == nil {
			return other, nil
		}
		return prefer, nil
	case errP == nil:
		return prefer, nil
	case errO == nil:
		return other, nil
	}
	return prefer, errP
}

// checkHeader validates a file's size and header and returns used.
func checkHeader(data []byte) (int, error) {
	if len(data) == 0 {
		return 0, ErrEmptyFile
	}
	if len(data) < headerSize {
		return 0, fmt.Errorf("%w: %d bytes, shorter than the header", ErrTruncated, len(data))
	}
	used := readUsed(data)
	if used < headerSize {
		return 0, fmt.Errorf("%w: used = %d", ErrCorrupt, used)
	}
	if used > len(data) {
		return 0, fmt.Errorf("%w: used = %d but the file has %d bytes", ErrTruncated, used, len(data))
	}
	return used, nil
}

// ParseFileName splits a metric file name (without directory) as client_python
// does: "counter_<id>.db", "histogram_<id>.db", "summary_<id>.db" and
// "gauge_<mode>_<id>.db" with one of the ten gauge modes. ok is false for
// anything else.
func ParseFileName(name string) (typ, mode, id string, ok bool) {
	base, found := strings.CutSuffix(name, ".db")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(base, "_")
	switch parts[0] {
	case "counter", "histogram", "summary":
		if len(parts) == 2 && parts[1] != "" {
			return parts[0], "", parts[1], true
		}
	case "gauge":
		if len(parts) == 3 && parts[2] != "" && validGaugeMode(parts[1]) {
			return parts[0], parts[1], parts[2], true
		}
	}
	return "", "", "", false
}

// FileName is the inverse of ParseFileName. It does not validate its
// arguments.
func FileName(typ, mode, id string) string {
	if typ == "gauge" {
		return typ + "_" + mode + "_" + id + ".db"
	}
	return typ + "_" + id + ".db"
}

func validGaugeMode(m string) bool {
	switch m {
	case "all", "liveall", "min", "livemin", "max", "livemax",
		"sum", "livesum", "mostrecent", "livemostrecent":
		return true
	}
	return false
}
