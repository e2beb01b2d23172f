package mmapstore

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func readValue(t *testing.T, path string, key []byte) float64 {
	t.Helper()
	fs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := DecodeKey(key)
	for _, s := range fs.Samples {
		if sampleID(s.Key) == sampleID(&want) {
			return s.Value
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

// TestTrap3_DeletedFileDoesNotSwallowWrites is the seed article's third trap:
// a fixture deletes the metric files while the writer holds them mapped. In
// client_python the writer keeps writing into the unlinked inode and every
// later increment is lost. Here Check notices, recreates the file with the
// current values, and later writes land in the new file.
func TestTrap3_DeletedFileDoesNotSwallowWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := EncodeKey("http_requests", "http_requests_total", []string{"code"}, []string{"200"}, "Requests.")
	c, _ := f.Cell(key)
	c.Add(3)

	if ok, err := f.Check(); ok || err != nil {
		t.Fatalf("Check on an intact file = %v, %v", ok, err)
	}

	// The fixture wipes the directory's files.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c.Add(1) // lands in the unlinked file; Check carries it over
	ok, err := f.Check()
	if !ok || err != nil {
		t.Fatalf("Check after delete = %v, %v", ok, err)
	}
	c.Add(1)
	if got := readValue(t, path, key); got != 5 {
		t.Errorf("after delete: file holds %v, want 5", got)
	}

	// Replaced by another file (a fixture that copies a fresh directory in).
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("junk"), 0o600)
	os.Rename(other, path)
	if ok, err := f.Check(); !ok || err != nil {
		t.Fatalf("Check after replace = %v, %v", ok, err)
	}
	c.Add(1)
	if got := readValue(t, path, key); got != 6 || c.Load() != 6 {
		t.Errorf("after replace: file %v, cell %v, want 6", got, c.Load())
	}

	// New series after the recreation go to the new file too.
	c2, err := f.Cell(EncodeKey("x", "x_total", nil, nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	c2.Add(2)
	if fs, _ := ReadFile(path); len(fs.Samples) != 2 {
		t.Errorf("new file has %d samples", len(fs.Samples))
	}
}

// TestCheckDrainsLateAdds: a goroutine that loaded a Cell's pointer just
// before Check recreated the file writes through it afterwards; the add
// reaches the new file.
func TestCheckDrainsLateAdds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	f, _ := Open(path, Options{})
	defer f.Close()
	key := EncodeKey("c", "c_total", nil, nil, "")
	c, _ := f.Cell(key)
	c.Add(1)
	stale := &Cell{}
	stale.p.Store(c.p.Load()) // what a racing Add holds
	os.Remove(path)
	if ok, _ := f.Check(); !ok {
		t.Fatal("not recreated")
	}
	stale.Add(10) // the late add, through the pointer loaded before the recreation
	c.Add(100)
	if ok, _ := f.Check(); ok {
		t.Fatal("recreated twice")
	}
	if c.Load() != 111 || readValue(t, path, key) != 111 {
		t.Errorf("cell %v, file %v, want 111", c.Load(), readValue(t, path, key))
	}
	stale.Add(1000) // later still
	f.Close()
	if c.Load() != 1111 {
		t.Errorf("after Close: cell %v, want 1111", c.Load())
	}
}

// TestCheckUnderLoad deletes the file again and again while goroutines add:
// once they stop and Check has drained, the file holds the exact total.
func TestCheckUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	f, _ := Open(path, Options{})
	defer f.Close()
	key := EncodeKey("c", "c_total", nil, nil, "")
	c, _ := f.Cell(key)
	const workers, adds = 4, 20000
	var wg sync.WaitGroup
	var stop atomic.Bool
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range adds {
				c.Add(1)
			}
		}()
	}
	recreations := 0
	go func() { wg.Wait(); stop.Store(true) }()
	for !stop.Load() {
		os.Remove(path)
		if ok, err := f.Check(); err != nil {
			t.Error(err)
			break
		} else if ok {
			recreations++
		}
	}
	wg.Wait()
	f.Check() // drain the last late adds
	if got := readValue(t, path, key); got != workers*adds || c.Load() != workers*adds {
		t.Errorf("after %d recreations: file %v, cell %v, want %d", recreations, got, c.Load(), workers*adds)
	}
	t.Logf("%d recreations", recreations)
}

func TestCheckAfterClose(t *testing.T) {
	f, _ := Open(filepath.Join(t.TempDir(), "counter_0a.db"), Options{})
	f.Close()
	if _, err := f.Check(); err != ErrClosed {
		t.Errorf("Check after Close = %v", err)
	}
}

// mappingsOf returns the lines of /proc/self/maps that map a file in dir.
func mappingsOf(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, dir+"/") {
			out = append(out, line)
		}
	}
	return out
}

// TestRecreationPinsNoOldFile: a tool that deletes the file again and again
// must not make the writer keep the deleted files (their memory, on a
// tmpfs) or their mappings; a goroutine that still holds a Cell's pointer
// from before every recreation adds into the current file.
func TestRecreationPinsNoOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := EncodeKey("c", "c_total", nil, nil, "")
	c, _ := f.Cell(key)
	c.Add(1)
	stale := &Cell{ts: c.ts}
	stale.p.Store(c.p.Load()) // what a goroutine inside Add holds
	const rounds = 200
	for i := range rounds {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.Check(); !ok || err != nil {
			t.Fatalf("round %d: Check = %v, %v", i, ok, err)
		}
		c.Add(1)
	}
	maps := mappingsOf(t, dir)
	if len(maps) != 1 || strings.Contains(maps[0], "(deleted)") {
		t.Errorf("after %d recreations the process maps %d files of the directory, want 1 (the current one):\n%s",
			rounds, len(maps), strings.Join(maps[:min(len(maps), 5)], "\n"))
	}
	stale.Add(1000)
	stale.SetWithTimestamp(stale.Load(), 7) // a late timestamp store lands too
	if got := readValue(t, path, key); got != 1+rounds+1000 || c.Load() != 1+rounds+1000 {
		t.Errorf("file %v, cell %v, want %d", got, c.Load(), 1+rounds+1000)
	}
	if ts := c.loadTimestamp(); ts != 7 {
		t.Errorf("timestamp %v, want 7", ts)
	}
}
