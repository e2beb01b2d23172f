package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unsafe"
)

// ambiguousFile returns the image of a file that frames in both layouts: two
// Current entries (keys k1 and k2) whose first timestamp and second value are
// made so that the Legacy walk sees the first entry, then one more spanning the
// rest of the file (its key from the first timestamp to the second value's
// first byte, its value the second timestamp).
func ambiguousFile(k1, k2 string) []byte {
	data := make([]byte, headerSize)
	data = appendEntry(data, []byte(k1), Current)
	ts := len(data) - 8
	data = appendEntry(data, []byte(k2), Current)
	end := len(data)
	binary.LittleEndian.PutUint32(data[ts:], uint32(end-16+1-(ts+4))) // the spanning key's length
	copy(data[ts+4:ts+8], "[   ")
	copy(data[end-16:end-8], "]       ") // its last byte, then its padding
	binary.LittleEndian.PutUint32(data, uint32(end))
	return data
}

// refParse is how files were read before the one-pass parse: detectLayout walks
// both layouts (and decodes every key on a tie), then the entries are parsed in
// the layout found. The one-pass parse must decide the same way.
func refParse(data []byte) ([]Sample, Layout, error) {
	used, err := checkHeader(data)
	if err != nil {
		return nil, Current, err
	}
	layout, err := detectLayout(data, headerSize, used, Current)
	if err != nil {
		return nil, layout, err
	}
	var samples []Sample
	err = walk(data, headerSize, used, layout, func(e rawEntry) error {
		k, err := DecodeKey(e.key)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		s := Sample{Key: &k, Value: readFloat(data, e.valueOff)}
		if layout == Current {
			s.Timestamp = readFloat(data, e.valueOff+8)
		}
		samples = append(samples, s)
		return nil
	})
	return samples, layout, err
}

func readFloat(data []byte, off int) float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(data[off:]))
}

// sameParse fails t unless the one-pass parse of data agrees with refParse.
func sameParse(t *testing.T, data []byte) (samples []Sample, layout Layout, err error) {
	t.Helper()
	samples, layout, err = parseBytes(data)
	want, wantLayout, wantErr := refParse(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("parse: %v, reference: %v", err, wantErr)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrEmptyFile) {
			t.Fatalf("parse: unexpected error kind: %v", err)
		}
		return samples, layout, err
	}
	if layout != wantLayout || len(samples) != len(want) {
		t.Fatalf("parse: %v, %d samples; reference: %v, %d", layout, len(samples), wantLayout, len(want))
	}
	for i, s := range samples {
		w := want[i]
		if !reflect.DeepEqual(*s.Key, *w.Key) || !sameFloat(s.Value, w.Value) || !sameFloat(s.Timestamp, w.Timestamp) {
			t.Fatalf("sample %d: %+v %+v, reference %+v %+v", i, s, *s.Key, w, *w.Key)
		}
	}
	return samples, layout, nil
}

// scanOne writes data as the only file of a new directory and scans it twice
// with a new Reader, returning the second scan.
func scanOne(t *testing.T, data []byte) (*Reader, []FileSamples, []SkippedFile) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "counter_1.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := NewReader()
	t.Cleanup(func() { r.Close() })
	var files []FileSamples
	var skipped []SkippedFile
	for range 2 {
		var err error
		if files, skipped, err = r.ScanDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	return r, files, skipped
}

// TestAmbiguousFileIsCurrent: a file whose entries frame in both layouts is
// read in the Current layout when its keys decode there, as before.
func TestAmbiguousFileIsCurrent(t *testing.T) {
	k1 := string(EncodeKey("a", "a_total", []string{"x"}, []string{"1"}, "h"))
	k2 := string(EncodeKey("a", "a_total", []string{"x"}, []string{"22"}, "h"))
	data := ambiguousFile(k1, k2)
	used := readUsed(data)
	if walk(data, headerSize, used, Current, nil) != nil || walk(data, headerSize, used, Legacy, nil) != nil {
		t.Fatal("the test file does not walk in both layouts")
	}
	samples, layout, err := sameParse(t, data)
	if err != nil || layout != Current || len(samples) != 2 || samples[1].Key.Labels[0].Value != "22" {
		t.Fatalf("parse: %v, %v, %d samples", err, layout, len(samples))
	}
	_, files, skipped := scanOne(t, data)
	if len(skipped) != 0 || len(files) != 1 || files[0].Layout != Current || len(files[0].Samples) != 2 ||
		files[0].Samples[1].Key.Labels[0].Value != "22" {
		t.Fatalf("scan: %+v, skipped %v", files, skipped)
	}
}

// TestAmbiguousFileDecodingInNeither: a file that frames in both layouts but
// whose keys decode in neither is corrupt: both layouts are tried (the first
// one's keys are released before the second is parsed) and the file skipped.
func TestAmbiguousFileDecodingInNeither(t *testing.T) {
	k1 := string(EncodeKey("a", "a_total", nil, nil, "h"))
	data := ambiguousFile(k1, `[1, 2, 3, 4]`)
	used := readUsed(data)
	if walk(data, headerSize, used, Current, nil) != nil || walk(data, headerSize, used, Legacy, nil) != nil {
		t.Fatal("the test file does not walk in both layouts")
	}
	if _, alt, err := guessLayout(data, headerSize, used); err != nil || !alt {
		t.Fatalf("guessLayout: alt %v, %v; want both layouts possible", alt, err)
	}
	if _, _, err := sameParse(t, data); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("parse: %v, want ErrCorrupt", err)
	}
	r, files, skipped := scanOne(t, data)
	if len(files) != 0 || len(skipped) != 1 || !errors.Is(skipped[0].Reason, ErrCorrupt) {
		t.Fatalf("scan: %d files, skipped %v", len(files), skipped)
	}
	if st := r.Stats(); st.Keys != 0 || st.Files != 0 {
		t.Errorf("after skipping the file the Reader holds %d keys, %d files", st.Keys, st.Files)
	}
}

// TestCorruptionPastTheProbe: an entry broken after the first ones (which
// decide the layout to try first) still makes the file corrupt, in both
// layouts, and nothing of it stays interned.
func TestCorruptionPastTheProbe(t *testing.T) {
	for _, layout := range []Layout{Current, Legacy} {
		path := filepath.Join(t.TempDir(), "counter_1.db")
		f := writeSeries(t, path, layout, 0, 20)
		f.Close()
		orig, _ := os.ReadFile(path)
		// Offsets of the entries.
		var offs []int
		walk(orig, headerSize, readUsed(orig), layout, func(e rawEntry) error {
			offs = append(offs, e.valueOff-len(e.key)-padLen(len(e.key))-4)
			return nil
		})
		if len(offs) != 20 {
			t.Fatalf("%v: %d entries", layout, len(offs))
		}
		for _, entry := range []int{layoutProbe, layoutProbe + 1, 12, 19} {
			for _, c := range []struct {
				name string
				off  int // from the entry's start
				b    byte
			}{{"key length", 0, 0x7f}, {"'['", 4, '{'}, {"family", 6, 0xff}, {"padding", -1, 'x'}} {
				data := append([]byte(nil), orig...)
				off := offs[entry] + c.off
				if c.off < 0 { // the last pad byte, before the value
					klen := int(binary.LittleEndian.Uint32(orig[offs[entry]:]))
					off = offs[entry] + 4 + klen + padLen(klen) - 1
				}
				data[off] = c.b
				if _, _, err := sameParse(t, data); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%v: %s of entry %d: %v, want ErrCorrupt", layout, c.name, entry, err)
				}
				r, files, skipped := scanOne(t, data)
				if len(files) != 0 || len(skipped) != 1 || !errors.Is(skipped[0].Reason, ErrCorrupt) {
					t.Errorf("%v: %s of entry %d: scan gave %d files, skipped %v", layout, c.name, entry, len(files), skipped)
				}
				if st := r.Stats(); st.Keys != 0 {
					t.Errorf("%v: %s of entry %d: %d keys left interned", layout, c.name, entry, st.Keys)
				}
			}
		}
	}
}

// TestReaderKeysByPosition: files with the same keys in another order, or
// with one key changed, each get their own keys at every position, although
// the Reader first tries the key at the same position of the file before.
func TestReaderKeysByPosition(t *testing.T) {
	dir := t.TempDir()
	key := func(i int) []byte {
		return EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, "help")
	}
	orders := map[string][]int{
		"counter_0a.db": {0, 1, 2, 3, 4, 5, 6, 7},
		"counter_1a.db": {7, 6, 5, 4, 3, 2, 1, 0},
		"counter_2a.db": {0, 1, 2, 99, 4, 5, 6, 7},
		"counter_3a.db": {0, 1, 2, 3},
		"counter_4a.db": {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	}
	files := map[string]*File{}
	write := func(name string) {
		f, err := Open(filepath.Join(dir, name), Options{Layout: Legacy})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range orders[name] {
			c, err := f.Cell(key(i))
			if err != nil {
				t.Fatal(err)
			}
			c.Set(float64(i))
		}
		files[name] = f
	}
	for name := range orders {
		write(name)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	r := NewReader()
	defer r.Close()
	check := func(want int) {
		t.Helper()
		got, skipped, err := r.ScanDir(dir)
		if err != nil || len(skipped) != 0 || len(got) != len(files) {
			t.Fatalf("scan: %d files, %v, %v", len(got), skipped, err)
		}
		distinct := map[*Key]bool{}
		for _, fs := range got {
			order := orders[filepath.Base(fs.Path)]
			if len(fs.Samples) != len(order) {
				t.Fatalf("%s: %d samples, want %d", fs.Path, len(fs.Samples), len(order))
			}
			for j, s := range fs.Samples {
				if s.Key.Labels[0].Value != fmt.Sprint(order[j]) || s.Value != float64(order[j]) {
					t.Errorf("%s: entry %d is %s = %v, want i=%d", fs.Path, j, sampleID(s.Key), s.Value, order[j])
				}
				distinct[s.Key] = true
			}
		}
		if st := r.Stats(); st.Keys != want || len(distinct) != want {
			t.Errorf("%d keys interned, %d distinct *Key in the scan; want %d", st.Keys, len(distinct), want)
		}
	}
	check(11) // 0..9 and 99
	// Forget the files parsed so far (their keys' counts drop), then parse new
	// ones after them: keys of the forgotten files are not reused unless interned.
	for _, name := range []string{"counter_2a.db", "counter_4a.db"} {
		files[name].Close()
		delete(files, name)
		os.Remove(filepath.Join(dir, name))
	}
	check(8)
	orders["counter_5a.db"] = []int{0, 1, 2, 99, 4, 5, 6, 7, 8}
	write("counter_5a.db")
	check(10)
}

// TestReaderSharesNames: the keys a Reader decodes share their family, help
// and label name strings, and still decode escapes.
func TestReaderSharesNames(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(filepath.Join(dir, "counter_1.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values := []string{"a", "b\"q\"", "é\n", "a"}
	for i, v := range values {
		c, err := f.Cell(EncodeKey("fam", "fam_total", []string{"route", "code"}, []string{v, fmt.Sprint(i)}, "Help \"x\"."))
		if err != nil {
			t.Fatal(err)
		}
		c.Set(1)
	}
	r := NewReader()
	defer r.Close()
	got, _, err := r.ScanDir(dir)
	if err != nil || len(got) != 1 || len(got[0].Samples) != len(values) {
		t.Fatalf("scan: %+v, %v", got, err)
	}
	first := got[0].Samples[0].Key
	for i, s := range got[0].Samples {
		k := s.Key
		want := Key{Family: "fam", Sample: "fam_total", Help: "Help \"x\".",
			Labels: []LabelPair{{"code", fmt.Sprint(i)}, {"route", values[i]}}}
		if !reflect.DeepEqual(*k, want) {
			t.Errorf("key %d = %+v, want %+v", i, *k, want)
		}
		same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
		if !same(k.Family, first.Family) || !same(k.Help, first.Help) ||
			!same(k.Labels[0].Name, first.Labels[0].Name) || !same(k.Labels[1].Name, first.Labels[1].Name) {
			t.Errorf("key %d does not share the names of key 0", i)
		}
	}
}
