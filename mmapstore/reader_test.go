package mmapstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

func writeSeries(t *testing.T, path string, layout Layout, from, to int) *File {
	t.Helper()
	f, err := Open(path, Options{Layout: layout})
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		c, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, "help"))
		if err != nil {
			t.Fatal(err)
		}
		c.Set(float64(i))
	}
	return f
}

func TestReaderIncrementalAndInterned(t *testing.T) {
	dir := t.TempDir()
	f1 := writeSeries(t, filepath.Join(dir, "counter_0a.db"), Current, 0, 100)
	defer f1.Close()
	f2 := writeSeries(t, filepath.Join(dir, "counter_1a.db"), Legacy, 0, 100)
	defer f2.Close()

	r := NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) != 0 || len(files) != 2 {
		t.Fatalf("%d files, %v, %v", len(files), skipped, err)
	}
	if files[0].Layout != Current || files[1].Layout != Legacy {
		t.Errorf("layouts %v %v", files[0].Layout, files[1].Layout)
	}
	for i := range 100 {
		a, b := files[0].Samples[i], files[1].Samples[i]
		if a.Key != b.Key {
			t.Fatal("same key bytes in two files decoded twice")
		}
		if a.Value != float64(i) || b.Value != float64(i) {
			t.Fatalf("values %v %v", a.Value, b.Value)
		}
	}
	st := r.Stats()
	if st.ParsedEntries != 200 || st.DecodedKeys != 100 || st.Files != 2 || st.Keys != 100 {
		t.Errorf("after first scan: %+v", st)
	}

	// Steady state: nothing parsed, values still fresh.
	c, _ := f1.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{"5"}, "help"))
	c.Add(0.5)
	files, _, _ = r.ScanDir(dir)
	if files[0].Samples[5].Value != 5.5 {
		t.Errorf("value not reloaded: %v", files[0].Samples[5].Value)
	}
	if st := r.Stats(); st.ParsedEntries != 200 || st.DecodedKeys != 100 {
		t.Errorf("steady scan parsed again: %+v", st)
	}

	// Appends, including enough to grow the file: only they are parsed.
	for i := 100; i < 1000; i++ {
		c, _ := f1.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, "help"))
		c.Set(float64(i))
	}
	files, skipped, _ = r.ScanDir(dir)
	if len(skipped) != 0 || len(files[0].Samples) != 1000 || files[0].Samples[999].Value != 999 {
		t.Fatalf("after append: %d samples, skipped %v", len(files[0].Samples), skipped)
	}
	if st := r.Stats(); st.ParsedEntries != 1100 || st.DecodedKeys != 1000 {
		t.Errorf("after append: %+v", st)
	}

	// A file that disappears is forgotten, and its keys with it once unused.
	os.Remove(f1.Path())
	files, _, _ = r.ScanDir(dir)
	if st := r.Stats(); len(files) != 1 || st.Files != 1 || st.Keys != 100 {
		t.Errorf("after delete: %d files, %+v", len(files), st)
	}
}

func TestReaderReplacedFileIsReparsed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 10)
	r := NewReader()
	defer r.Close()
	r.ScanDir(dir)
	f.Close()

	// Another file of another layout moves into its place.
	tmp := filepath.Join(t.TempDir(), "counter_0a.db")
	g := writeSeries(t, tmp, Legacy, 50, 53)
	g.Close()
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	files, skipped, _ := r.ScanDir(dir)
	if len(skipped) != 0 || len(files) != 1 || len(files[0].Samples) != 3 || files[0].Layout != Legacy ||
		files[0].Samples[0].Value != 50 {
		t.Fatalf("replaced file: %+v, skipped %v", files, skipped)
	}
}

func TestReaderShrunkFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 10)
	f.Close()
	r := NewReader()
	defer r.Close()
	r.ScanDir(dir)

	// Truncated in place below used: skipped, not a crash.
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(files) != 0 || len(skipped) != 1 || !errors.Is(skipped[0].Reason, ErrTruncated) {
		t.Fatalf("truncated: %v %v %v", files, skipped, err)
	}
	// Truncated to zero.
	os.Truncate(path, 0)
	_, skipped, _ = r.ScanDir(dir)
	if len(skipped) != 1 || !errors.Is(skipped[0].Reason, ErrEmptyFile) {
		t.Fatalf("emptied: %v", skipped)
	}
}

// TestGuardFault: a file truncated between the stat and the loads faults on
// the read-only mapping; the guard turns that into a skip.
func TestGuardFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 1000)
	f.Close()
	rf := &readerFile{parsed: headerSize}
	var st unix.Stat_t
	unix.Stat(path, &st)
	rf.dev, rf.ino = uint64(st.Dev), uint64(st.Ino)
	r := NewReader()
	if err := r.remapLocked(path, rf); err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(rf.data)
	os.Truncate(path, 0)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var fs FileSamples
	err := guardFault(func() error { return r.readLocked(path, rf, &fs, true, -1) })
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("guardFault = %v", err)
	}
	// Other panics are not swallowed.
	defer func() {
		if recover() == nil {
			t.Error("guardFault swallowed a non-fault panic")
		}
	}()
	guardFault(func() error { panic("bug") })
}

func TestReaderSkipsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeSeries(t, filepath.Join(dir, "counter_0a.db"), Current, 0, 3)
	defer good.Close()
	valid, _ := os.ReadFile(good.Path())

	truncated := append([]byte(nil), valid[:100]...) // used says more
	badKey := append([]byte(nil), valid...)
	copy(badKey[12:], "{{")
	bad := map[string]struct {
		data []byte
		want error
	}{
		"counter_empty.db":       {nil, ErrEmptyFile},
		"counter_short.db":       {[]byte{1, 2, 3}, ErrTruncated},
		"counter_trunc.db":       {truncated, ErrTruncated},
		"counter_badkey.db":      {badKey, ErrCorrupt},
		"counter_foreign.db":     {[]byte("SQLite format 3\x00 and then some more bytes here"), ErrTruncated}, // its "used" points past the end
		"counter_junk.db":        {append([]byte{48, 0, 0, 0, 0, 0, 0, 0}, bytes.Repeat([]byte("junk"), 10)...), ErrCorrupt},
		"counter_negused.db":     {[]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ErrCorrupt},
		"info_0a.db":             {valid, ErrUnknownName},
		"gauge_nomode_0a.db":     {valid, ErrUnknownName},
		"counter_a_b.db":         {valid, ErrUnknownName},
		"histogram_strayhdr.db":  {append(valid[:len(valid):len(valid)], 1), nil}, // trailing bytes past used are fine
		".counter_0a.db.tmp-123": {nil, nil},                                      // ignored: not *.db
		"notes.txt":              {[]byte("x"), nil},
	}
	for name, b := range bad {
		os.WriteFile(filepath.Join(dir, name), b.data, 0o600)
	}
	os.Mkdir(filepath.Join(dir, "counter_dir.db"), 0o700)

	r := NewReader()
	defer r.Close()
	for range 2 { // twice: skipped files are retried, and again skipped
		files, skipped, err := r.ScanDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 2 {
			t.Errorf("%d good files, want 2", len(files))
		}
		reasons := map[string]error{}
		for _, s := range skipped {
			reasons[filepath.Base(s.Path)] = s.Reason
		}
		for name, b := range bad {
			if b.want != nil && !errors.Is(reasons[name], b.want) {
				t.Errorf("%s: reason %v, want %v", name, reasons[name], b.want)
			}
			if b.want == nil && reasons[name] != nil {
				t.Errorf("%s: skipped: %v", name, reasons[name])
			}
		}
		if !errors.Is(reasons["counter_dir.db"], ErrCorrupt) {
			t.Errorf("directory: %v", reasons["counter_dir.db"])
		}
	}
	if _, _, err := r.ScanDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("scan of a missing directory succeeded")
	}
}

// TestCorruptionOracle: corrupting bytes 8..16 (key length and key start) of a
// one-entry file is detected, not misread, in both layouts.
func TestCorruptionOracle(t *testing.T) {
	for _, layout := range []Layout{Current, Legacy} {
		path := filepath.Join(t.TempDir(), "counter_1.db")
		f := writeSeries(t, path, layout, 7, 8)
		f.Close()
		orig, _ := os.ReadFile(path)
		corruptions := [][]byte{
			make([]byte, 8),
			bytes.Repeat([]byte{0xff}, 8),
			[]byte("AAAAAAAA"),
			{0x10, 0, 0, 0, '[', '"', 'c', '"'}, // shorter key length
			{0x30, 0, 0, 0, '[', '"', 'c', '"'}, // longer
			{byte(orig[8] - 8), 0, 0, 0, '[', '"', 'c', '"'},
			{byte(orig[8] + 8), 0, 0, 0, '[', '"', 'c', '"'},
			{orig[8], orig[9], orig[10], orig[11], '{', '"', 'c', '"'},
			{orig[8], orig[9], orig[10], orig[11], 0, 0, 0, 0},
			{orig[8], 0, 0, 0x80, orig[12], orig[13], orig[14], orig[15]},
		}
		corruptions = append(corruptions, []byte("somejunk")) // client_python's own test
		// Every single-byte change of the key length, the '[' and the quote
		// that opens the family. (Byte 14 is the family's first character:
		// changing it to another letter makes another valid key, which no
		// checksum-less format can tell from the original.)
		for _, i := range []int{0, 1, 2, 3, 4, 5} {
			for x := 1; x < 256; x++ {
				b := append([]byte(nil), orig[8:16]...)
				b[i] ^= byte(x)
				corruptions = append(corruptions, b)
			}
		}
		for i, c := range corruptions {
			data := append([]byte(nil), orig...)
			copy(data[8:16], c)
			if bytes.Equal(data, orig) {
				continue
			}
			samples, _, err := parseBytes(data) // what ReadFile does after reading
			if i < 12 {                         // the named cases also through the file API
				os.WriteFile(path, data, 0o600)
				var fs FileSamples
				fs, err = ReadFile(path)
				samples = fs.Samples
			}
			if err == nil {
				t.Errorf("%v: corruption % x read as %d samples", layout, c, len(samples))
			} else if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v: corruption % x: %v, want ErrCorrupt", layout, c, err)
			}
		}
	}
}

// TestLayoutDetectionPerFile reads a directory that mixes both layouts,
// including single-entry files and header-only files.
func TestLayoutDetectionPerFile(t *testing.T) {
	dir := t.TempDir()
	for i, n := range []int{0, 1, 2, 5, 300} {
		for _, layout := range []Layout{Current, Legacy} {
			f := writeSeries(t, filepath.Join(dir, fmt.Sprintf("counter_%d%s.db", i, layout)), layout, 0, n)
			f.Close()
		}
	}
	r := NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) != 0 || len(files) != 10 {
		t.Fatalf("%d files, %v, %v", len(files), skipped, err)
	}
	for _, fs := range files {
		if len(fs.Samples) > 0 && fs.ID[1:] != fs.Layout.String() {
			t.Errorf("%s detected as %v", fs.Path, fs.Layout)
		}
		for i, s := range fs.Samples {
			if s.Value != float64(i) {
				t.Errorf("%s: sample %d = %v", fs.Path, i, s.Value)
			}
		}
	}
}

// TestReaderLayoutDecidedOnFirstEntries: a header-only file is parsed later,
// when its first entries appear, in its own layout.
func TestReaderLayoutDecidedOnFirstEntries(t *testing.T) {
	dir := t.TempDir()
	f, _ := Open(filepath.Join(dir, "gauge_all_1.db"), Options{Layout: Legacy})
	defer f.Close()
	r := NewReader()
	defer r.Close()
	files, _, _ := r.ScanDir(dir)
	if len(files) != 1 || len(files[0].Samples) != 0 {
		t.Fatalf("%+v", files)
	}
	c, _ := f.Cell(EncodeKey("g", "g", nil, nil, ""))
	c.Set(4)
	files, skipped, _ := r.ScanDir(dir)
	if len(skipped) != 0 || len(files[0].Samples) != 1 || files[0].Samples[0].Value != 4 || files[0].Layout != Legacy {
		t.Fatalf("%+v %v", files, skipped)
	}
}

// TestReaderGrowthAfterStat: the writer grows the file between the reader's
// stat (and mapping) and its read of used; the reader maps again instead of
// reporting a healthy file as truncated.
func TestReaderGrowthAfterStat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 10)
	defer f.Close()
	rf := &readerFile{parsed: headerSize}
	var st unix.Stat_t
	unix.Stat(path, &st)
	rf.dev, rf.ino = uint64(st.Dev), uint64(st.Ino)
	r := NewReader()
	defer r.Close()
	if err := r.remapLocked(path, rf); err != nil {
		t.Fatal(err)
	}
	small := len(rf.data)
	for i := 10; i < 2000; i++ { // grows the file well past the mapping
		c, _ := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, "help"))
		c.Set(float64(i))
	}
	var fs FileSamples
	if err := guardFault(func() error { return r.readLocked(path, rf, &fs, true, -1) }); err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(rf.data)
	if len(rf.data) <= small || len(fs.Samples) != 2000 || fs.Samples[1999].Value != 1999 {
		t.Fatalf("mapping %d -> %d bytes, %d samples", small, len(rf.data), len(fs.Samples))
	}
}

// A steady-state scan reuses the Samples of the previous one: its allocations do not grow
// with the number of entries (only the directory listing allocates).
func TestReaderSteadyScanReusesSamples(t *testing.T) {
	allocs := func(series int) float64 {
		dir := t.TempDir()
		for w := range 3 {
			f := writeSeries(t, filepath.Join(dir, fmt.Sprintf("counter_%da.db", w)), Current, 0, series)
			defer f.Close()
		}
		r := NewReader()
		defer r.Close()
		first, _, _ := r.ScanDir(dir)
		before := &first[0].Samples[0]
		n := testing.AllocsPerRun(20, func() { r.ScanDir(dir) })
		again, _, _ := r.ScanDir(dir)
		if &again[0].Samples[0] != before {
			t.Errorf("%d series: Samples not reused", series)
		}
		return n
	}
	small, large := allocs(10), allocs(2000)
	if large > small {
		t.Errorf("steady scan allocations grow with entries: %v for 10 series, %v for 2000", small, large)
	}
}

// ScanDirFunc hands over, file by file, exactly what ScanDir returns.
func TestScanDirFuncMatchesScanDir(t *testing.T) {
	dir := t.TempDir()
	f1 := writeSeries(t, filepath.Join(dir, "counter_0a.db"), Current, 0, 50)
	defer f1.Close()
	f2 := writeSeries(t, filepath.Join(dir, "counter_1a.db"), Legacy, 20, 80)
	defer f2.Close()
	os.WriteFile(filepath.Join(dir, "counter_bad.db"), nil, 0o600)
	r, rf := NewReader(), NewReader()
	defer r.Close()
	defer rf.Close()
	for round := range 3 {
		want, wantSkipped, err := r.ScanDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []FileSamples
		skipped, err := rf.ScanDirFunc(dir, func(fs *FileSamples) {
			c := *fs
			c.Samples = append([]Sample(nil), fs.Samples...)
			got = append(got, c)
		})
		if err != nil || len(skipped) != len(wantSkipped) || len(skipped) != 1 {
			t.Fatalf("round %d: skipped %v, want %v, %v", round, skipped, wantSkipped, err)
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d files, want %d", round, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Path != w.Path || g.Type != w.Type || g.ID != w.ID || g.Layout != w.Layout || len(g.Samples) != len(w.Samples) {
				t.Fatalf("round %d: file %d: %+v, want %+v", round, i, g, w)
			}
			for j := range w.Samples {
				if fmt.Sprint(*g.Samples[j].Key) != fmt.Sprint(*w.Samples[j].Key) || g.Samples[j].Value != w.Samples[j].Value {
					t.Fatalf("round %d: %s sample %d: %+v, want %+v", round, w.Path, j, g.Samples[j], w.Samples[j])
				}
			}
		}
		c, _ := f2.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(100 + round)}, "help"))
		c.Add(float64(round))
	}
}

// Seq stays while a file's entries are only appended to, and changes when it is replaced.
func TestReaderSeq(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 10)
	r := NewReader()
	defer r.Close()
	seq := func() uint64 {
		t.Helper()
		files, _, err := r.ScanDir(dir)
		if err != nil || len(files) != 1 {
			t.Fatalf("%d files, %v", len(files), err)
		}
		return files[0].Seq
	}
	s1 := seq()
	if s1 == 0 {
		t.Fatal("Seq 0 from a Reader")
	}
	c, _ := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{"new"}, "help"))
	c.Add(1)
	if s2 := seq(); s2 != s1 {
		t.Errorf("Seq changed on append: %d -> %d", s1, s2)
	}
	f.Close()
	tmp := filepath.Join(t.TempDir(), "counter_0a.db")
	writeSeries(t, tmp, Current, 5, 8).Close()
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if s3 := seq(); s3 == s1 {
		t.Error("Seq kept for a replaced file")
	}
	if fs, _ := ReadFile(path); fs.Seq != 0 {
		t.Errorf("ReadFile: Seq %d", fs.Seq)
	}
}
