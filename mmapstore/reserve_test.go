package mmapstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// noFallocate is what a filesystem without fallocate(2) answers (ramfs,
// NFSv3, many FUSE mounts): the store must fall back to writing.
func noFallocate(int, uint32, int64, int64) error { return unix.EOPNOTSUPP }

var noFallocateOpts = Options{fallocate: noFallocate}

// TestNoFallocateReopenKeepsValues: where fallocate is missing, a file that
// is opened again (a restarted worker taking over its predecessor's lane)
// keeps every value, however many times it is reopened.
func TestNoFallocateReopenKeepsValues(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	key := EncodeKey("c", "c_total", []string{"route"}, []string{"/hello"}, "h")
	f, err := Open(path, noFallocateOpts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Cell(key)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(42)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		f, err := Open(path, noFallocateOpts)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if f.Created() || f.MovedAside() != "" {
			t.Errorf("reopen %d: Created %v, moved aside to %q: the file was not continued", i, f.Created(), f.MovedAside())
		}
		c, err := f.Cell(key)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Load(); got != 42 {
			t.Errorf("reopen %d: cell = %v, want 42", i, got)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readValue(t, path, key); got != 42 {
		t.Errorf("file holds %v, want 42", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the metric file: %v", len(ents), ents)
	}
}

// TestNoFallocateSparseFileKeepsBytesAndFillsHoles: a sparse file as Python
// makes it (header and entries, then a hole) with some bytes further on is
// continued without fallocate: the holes get blocks, and no byte that was
// there changes.
func TestNoFallocateSparseFileKeepsBytesAndFillsHoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_py.db")
	key := EncodeKey("c", "c_total", nil, nil, "h")
	var img []byte
	img = append(img, make([]byte, headerSize)...)
	img = appendEntry(img, key, Current)
	putUsed(img, len(img))
	*word(img, len(img)-16) = 0x4045000000000000 // 42.0
	const size = 1 << 20
	marker := bytes.Repeat([]byte("past-used"), 100) // not an entry: readers ignore it, writers must keep it
	const markerAt = size / 2
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt(img, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt(marker, markerAt); err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(size); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	before := blocksOf(t, path)
	if before*512 >= size {
		t.Fatalf("the test file is not sparse here (%d blocks)", before)
	}

	f, err := Open(path, noFallocateOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Created() {
		t.Fatal("the file was not continued")
	}
	c, _ := f.Cell(key)
	if c.Load() != 42 {
		t.Errorf("cell = %v, want 42", c.Load())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Errorf("size %d, want %d", len(got), size)
	}
	if !bytes.Equal(got[markerAt:markerAt+len(marker)], marker) {
		t.Error("bytes past used were overwritten")
	}
	if after := blocksOf(t, path); after*512 < size {
		t.Errorf("holes not filled: %d blocks for %d bytes", after, size)
	}
}

// TestNoFallocateGrowth: growing a file without fallocate keeps every value
// and reserves the new space.
func TestNoFallocateGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	f, err := Open(path, noFallocateOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	help := strings.Repeat("h", 200)
	var cells []*Cell
	for i := range 1000 { // ~264 KiB: 64 KiB -> 512 KiB
		c, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, help))
		if err != nil {
			t.Fatal(err)
		}
		c.Add(float64(i))
		cells = append(cells, c)
	}
	for i, c := range cells {
		if c.Load() != float64(i) {
			t.Fatalf("cell %d = %v", i, c.Load())
		}
	}
	st, _ := os.Stat(path)
	if st.Size() < 1<<18 {
		t.Errorf("file did not grow: %d bytes", st.Size())
	}
	if b := blocksOf(t, path); b*512 < st.Size() {
		t.Errorf("grown file is sparse: %d blocks for %d bytes", b, st.Size())
	}
	fs, err := ReadFile(path)
	if err != nil || len(fs.Samples) != 1000 || fs.Samples[999].Value != 999 {
		t.Fatalf("ReadFile: %d samples, %v", len(fs.Samples), err)
	}
}

func putUsed(b []byte, used int) { binary.LittleEndian.PutUint32(b, uint32(used)) }

func blocksOf(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks
}
