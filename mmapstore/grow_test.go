package mmapstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGrowthKeepsCells grows a file several times: every Cell keeps its
// address and value, and the file reads back whole.
func TestGrowthKeepsCells(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_1a.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cells []*Cell
	var ptrs []*uint64
	help := strings.Repeat("h", 200)
	for i := range 3000 { // ~3000 * 264 bytes: 64 KiB -> 1 MiB, four doublings
		c, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, help))
		if err != nil {
			t.Fatal(err)
		}
		c.Add(float64(i))
		cells = append(cells, c)
		ptrs = append(ptrs, c.p.Load())
	}
	for i, c := range cells {
		if c.p.Load() != ptrs[i] || c.Load() != float64(i) {
			t.Fatalf("cell %d moved or lost its value", i)
		}
	}
	st, _ := os.Stat(path)
	if st.Size() < 1<<19 {
		t.Errorf("file did not grow: %d bytes", st.Size())
	}
	fs, err := ReadFile(path)
	if err != nil || len(fs.Samples) != 3000 {
		t.Fatalf("ReadFile: %d samples, %v", len(fs.Samples), err)
	}
	for i, s := range fs.Samples {
		if s.Value != float64(i) || s.Key.Labels[0].Value != fmt.Sprint(i) {
			t.Fatalf("sample %d = %v %v", i, s.Value, s.Key.Labels)
		}
	}
}

func TestHugeKeyRoundTrip(t *testing.T) {
	for _, layout := range []Layout{Current, Legacy} {
		path := filepath.Join(t.TempDir(), "gauge_all_1.db")
		f, err := Open(path, Options{Layout: layout})
		if err != nil {
			t.Fatal(err)
		}
		prefix := EncodeKey("g", "g", []string{"v"}, []string{""}, "")
		value := strings.Repeat("é", (65536-len(prefix))/6) // each é is 6 key bytes: \u00e9
		value += strings.Repeat("x", 65536-len(prefix)-6*len([]rune(value)))
		key := EncodeKey("g", "g", []string{"v"}, []string{value}, "")
		if len(key) != 65536 {
			t.Fatalf("key is %d bytes", len(key))
		}
		small, _ := f.Cell(EncodeKey("g", "g", nil, nil, ""))
		c, err := f.Cell(key)
		if err != nil {
			t.Fatal(err)
		}
		c.Set(7)
		small.Set(3)
		f.Close()
		fs, err := ReadFile(path)
		if err != nil || len(fs.Samples) != 2 {
			t.Fatalf("%v: %d samples, %v", layout, len(fs.Samples), err)
		}
		if s := fs.Samples[1]; s.Value != 7 || s.Key.Labels[0].Value != value || fs.Samples[0].Value != 3 {
			t.Errorf("%v: huge key did not round-trip", layout)
		}
		// Reopening indexes the big entry.
		f, err = Open(path, Options{Layout: layout})
		if err != nil {
			t.Fatal(err)
		}
		c, _ = f.Cell(key)
		if c.Load() != 7 || f.Len() != 2 {
			t.Errorf("%v: reopened huge key: %v, %d entries", layout, c.Load(), f.Len())
		}
		f.Close()
	}
}

func TestMaxSize(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "counter_1.db"), Options{MaxSize: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var err2 error
	n := 0
	for ; n < 10000 && err2 == nil; n++ {
		_, err2 = f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(n)}, strings.Repeat("h", 100)))
	}
	if !errors.Is(err2, ErrFileFull) {
		t.Fatalf("after %d entries: %v, want ErrFileFull", n, err2)
	}
	if n < 500 {
		t.Errorf("only %d entries fit in 128 KiB", n)
	}
}

func TestOpenKeepsLayoutOfExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_1.db")
	f, _ := Open(path, Options{Layout: Legacy})
	c, _ := f.Cell(EncodeKey("a", "a_total", nil, nil, ""))
	c.Add(1)
	f.Close()
	f, err := Open(path, Options{Layout: Current})
	if err != nil {
		t.Fatal(err)
	}
	if f.Layout() != Legacy {
		t.Errorf("reopened legacy file as %v", f.Layout())
	}
	c, _ = f.Cell(EncodeKey("b", "b_total", nil, nil, ""))
	c.Add(2)
	f.Close()
	fs, err := ReadFile(path)
	if err != nil || fs.Layout != Legacy || len(fs.Samples) != 2 || fs.Samples[0].Value != 1 || fs.Samples[1].Value != 2 {
		t.Fatalf("%+v, %v", fs, err)
	}
}

func TestOpenCorruptOrEmptyExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_1.db")
	garbage := []byte("this is not a metric file, but it is long enough")
	os.WriteFile(path, garbage, 0o600)
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.MovedAside() == "" || !f.Created() {
		t.Fatalf("corrupt file not moved aside: %q %v", f.MovedAside(), f.Created())
	}
	if strings.HasSuffix(f.MovedAside(), ".db") {
		t.Errorf("moved aside to a name readers would scan: %s", f.MovedAside())
	}
	if b, _ := os.ReadFile(f.MovedAside()); !bytes.Equal(b, garbage) {
		t.Error("moved-aside file lost its content")
	}
	c, _ := f.Cell(EncodeKey("a", "a_total", nil, nil, ""))
	c.Add(1)
	f.Close()
	if fs, err := ReadFile(path); err != nil || len(fs.Samples) != 1 {
		t.Fatalf("recreated file: %v", err)
	}

	// A zero-length file holds nothing: replaced, not moved aside.
	path = filepath.Join(dir, "counter_2.db")
	os.WriteFile(path, nil, 0o600)
	f, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.MovedAside() != "" || !f.Created() {
		t.Errorf("empty file: moved aside %q, created %v", f.MovedAside(), f.Created())
	}
	if st, _ := os.Stat(path); st.Size() != initialSize {
		t.Errorf("size %d", st.Size())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestOpenPythonSparseFile continues a file created the way Python does it
// (sparse truncate, header written later): used 0 means empty.
func TestOpenPythonSparseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_1.db")
	fd, _ := os.Create(path)
	fd.Truncate(initialSize)
	fd.Close()
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Created() {
		t.Error("recreated a valid (empty) Python file")
	}
	c, err := f.Cell(EncodeKey("a", "a_total", nil, nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1)
	if fs, err := ReadFile(path); err != nil || len(fs.Samples) != 1 {
		t.Fatalf("%v", err)
	}
}

// TestAtomicCreation: a reader scanning while files are being created never
// sees a half-made one.
func TestAtomicCreation(t *testing.T) {
	dir := t.TempDir()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		r := NewReader()
		defer r.Close()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, skipped, err := r.ScanDir(dir)
			if err == nil && len(skipped) > 0 {
				err = fmt.Errorf("skipped %v", skipped[0])
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := range 200 {
		f, err := Open(filepath.Join(dir, fmt.Sprintf("counter_%d.db", i)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentOpenSameFile: of writers racing to open one file, one gets it
// (and creates it); the others fail with ErrLocked instead of sharing it.
func TestConcurrentOpenSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_1.db")
	type result struct {
		f   *File
		err error
	}
	results := make(chan result, 8)
	for range 8 {
		go func() {
			f, err := Open(path, Options{})
			results <- result{f, err}
		}()
	}
	var winners []*File
	for range 8 {
		r := <-results
		switch {
		case r.err == nil:
			winners = append(winners, r.f)
		case !errors.Is(r.err, ErrLocked):
			t.Errorf("a racer: %v, want ErrLocked", r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d racers opened the file, want 1", len(winners))
	}
	f := winners[0]
	if !f.Created() {
		t.Error("the winner did not create the file")
	}
	if ok, err := f.Check(); ok || err != nil {
		t.Errorf("Check = %v, %v: the winner's file was replaced", ok, err)
	}
	f.Close()
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the one file (temporary files left?)", len(ents))
	}
}
