package mmapstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// sameSamples fails unless got has the keys and values of want (from ReadFile).
func sameSamples(t *testing.T, got []Sample, want FileSamples) {
	t.Helper()
	if len(got) != len(want.Samples) {
		t.Fatalf("%d samples, ReadFile has %d", len(got), len(want.Samples))
	}
	for i, w := range want.Samples {
		g := got[i]
		if !reflect.DeepEqual(*g.Key, *w.Key) || g.Value != w.Value || g.Timestamp != w.Timestamp {
			t.Fatalf("sample %d: %+v %v, ReadFile has %+v %v", i, *g.Key, g.Value, *w.Key, w.Value)
		}
	}
}

// A file larger than minKeyCopy is parsed from the copy its remap reads, in
// both layouts, and gives what ReadFile gives; the values still come from the
// mapping.
func TestReaderParsesLargeFilesFromACopy(t *testing.T) {
	for _, l := range []Layout{Legacy, Current} {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			dir := t.TempDir()
			f := writeSeries(t, filepath.Join(dir, "counter_0a.db"), l, 0, 3000)
			defer f.Close()
			want, err := ReadFile(f.Path())
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader()
			defer r.Close()
			files, skipped, err := r.ScanDir(dir)
			if err != nil || len(skipped) != 0 || len(files) != 1 {
				t.Fatalf("%d files, %v, %v", len(files), skipped, err)
			}
			if files[0].Layout != l {
				t.Errorf("layout %v, want %v", files[0].Layout, l)
			}
			sameSamples(t, files[0].Samples, want)
			if st, _ := os.Stat(f.Path()); cap(r.cp.buf) < minKeyCopy || int64(cap(r.cp.buf)) > st.Size() {
				t.Errorf("the keys were not read from a copy (buffer of %d bytes)", cap(r.cp.buf))
			}
			c, _ := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{"2999"}, "help"))
			c.Add(1)
			files, _, _ = r.ScanDir(dir)
			if v := files[0].Samples[2999].Value; v != 3000 {
				t.Errorf("value after an add: %v, want 3000", v)
			}
		})
	}
}

// A copy that ends before the bytes in use (the writer appended after the
// remap read it), inside an entry or between two, is parsed as far as it goes
// and the rest from the mapping.
func TestReaderCopyShorterThanTheEntries(t *testing.T) {
	dir := t.TempDir()
	f := writeSeries(t, filepath.Join(dir, "counter_0a.db"), Legacy, 0, 3000)
	defer f.Close()
	want, err := ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	var ends []int // where entries end
	if err := walk(data, headerSize, readUsed(data), Legacy, func(e rawEntry) error {
		ends = append(ends, e.valueOff+Legacy.valueBytes())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{ends[1000], ends[1000] + 5, ends[len(ends)-1] - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			r := NewReader()
			defer r.Close()
			var st unix.Stat_t
			if err := unix.Lstat(f.Path(), &st); err != nil {
				t.Fatal(err)
			}
			r.seq++
			rf := &readerFile{dev: uint64(st.Dev), ino: uint64(st.Ino), parsed: headerSize, seq: r.seq}
			r.files[f.Path()] = rf
			if err := r.remapLocked(f.Path(), rf); err != nil {
				t.Fatal(err)
			}
			if r.cp.rf != rf {
				t.Fatal("no copy made")
			}
			r.cp.buf, r.cp.to = r.cp.buf[:cut-r.cp.from], cut
			var fs FileSamples
			if err := r.readLocked(f.Path(), rf, &fs, true, -1); err != nil {
				t.Fatal(err)
			}
			sameSamples(t, fs.Samples, want)
		})
	}
}

// A corrupt entry among the copied bytes makes the file skipped as corrupt,
// as ReadFile reports it.
func TestReaderCopyCorruptEntry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f := writeSeries(t, path, Legacy, 0, 3000)
	f.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int
	walk(data, headerSize, readUsed(data), Legacy, func(e rawEntry) error {
		ends = append(ends, e.valueOff+Legacy.valueBytes())
		return nil
	})
	data[ends[1999]+4] = 'x' // the '[' of entry 2000's key
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, rerr := ReadFile(path)
	r := NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(files) != 0 || len(skipped) != 1 {
		t.Fatalf("%d files, skipped %v, %v", len(files), skipped, err)
	}
	if !errors.Is(skipped[0].Reason, ErrCorrupt) || !errors.Is(rerr, ErrCorrupt) {
		t.Errorf("reader: %v; ReadFile: %v; want both corrupt", skipped[0].Reason, rerr)
	}
}
