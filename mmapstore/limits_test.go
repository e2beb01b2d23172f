package mmapstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssBytes is this process's resident memory, from /proc.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// pythonLikeFile writes a valid file of n entries and extends it with
// truncate to size, as client_python does: the bytes in use are on disk, the
// rest is a hole.
func pythonLikeFile(t *testing.T, path string, n int, size int64) {
	t.Helper()
	img := make([]byte, headerSize)
	for i := range n {
		img = appendEntry(img, EncodeKey("py", "py_total", []string{"i"}, []string{fmt.Sprint(i)}, "h"), Current)
	}
	putUsed(img, len(img))
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestReaderSkipsSparseFile: a 2 GiB file made by truncate (no block on
// disk) is skipped as sparse, without being mapped: a scan neither reads nor
// makes the filesystem allocate its holes, and the process's memory does not
// grow. So is a file whose header claims bytes in use that are holes.
func TestReaderSkipsSparseFile(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "counter_huge.db")
	fd, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(2<<30 - 1); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	claims := filepath.Join(dir, "counter_claims.db") // used = 1 MiB, only the header written
	pythonLikeFile(t, claims, 0, 4<<20)
	fd, _ = os.OpenFile(claims, os.O_RDWR, 0)
	hdr := make([]byte, 8)
	putUsed(hdr, 1<<20)
	fd.WriteAt(hdr, 0)
	fd.Close()
	good := filepath.Join(dir, "counter_py.db") // sparse past its bytes in use only: fine
	pythonLikeFile(t, good, 3, 64<<10)

	r := NewReader()
	defer r.Close()
	before := rssBytes(t)
	start := time.Now()
	files, skipped, err := r.ScanDir(dir)
	took := time.Since(start)
	grew := rssBytes(t) - before
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != good || len(files[0].Samples) != 3 {
		t.Errorf("files: %+v", files)
	}
	if len(skipped) != 2 {
		t.Fatalf("skipped %v, want the two sparse files", skipped)
	}
	for _, s := range skipped {
		if !errors.Is(s.Reason, ErrSparse) || s.Kind() != "sparse" {
			t.Errorf("%s: %v (%s), want sparse", s.Path, s.Reason, s.Kind())
		}
	}
	if grew > 32<<20 {
		t.Errorf("a scan of a 2 GiB sparse file grew the process by %d MiB", grew>>20)
	}
	if st := r.Stats(); st.Files != 1 {
		t.Errorf("%d files cached, want 1", st.Files)
	}
	t.Logf("scan with a 2 GiB sparse file: %s, RSS %+d KiB", took.Round(time.Microsecond), grew>>10)
}

// TestReaderMapsOnlyBytesInUse: the mapping of a file covers its bytes in
// use, not its size, and follows them as the writer appends.
func TestReaderMapsOnlyBytesInUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f := writeSeries(t, path, Current, 0, 3) // reserves 64 KiB
	defer f.Close()
	if err := f.growLocked(8 << 20); err != nil { // a file of 8 MiB with 3 entries
		t.Fatal(err)
	}
	r := NewReader()
	defer r.Close()
	if files, skipped, err := r.ScanDir(dir); err != nil || len(skipped) != 0 || len(files[0].Samples) != 3 {
		t.Fatalf("%v %v %v", files, skipped, err)
	}
	if n := len(r.files[path].data); n != os.Getpagesize() {
		t.Errorf("mapped %d bytes of a file of 8 MiB with %d in use, want one page", n, f.used)
	}
	for i := 3; i < 300; i++ {
		c, _ := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{fmt.Sprint(i)}, "help"))
		c.Set(float64(i))
	}
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) != 0 || len(files[0].Samples) != 300 || files[0].Samples[299].Value != 299 {
		t.Fatalf("after appends: %d samples, %v %v", len(files[0].Samples), skipped, err)
	}
	if n := len(r.files[path].data); n != roundPage(f.used) {
		t.Errorf("mapped %d bytes, want %d (the bytes in use, page-rounded)", n, roundPage(f.used))
	}
}

// TestReaderLimits: each limit skips what passes it, with its own reason,
// and leaves the rest of the scan alone.
func TestReaderLimits(t *testing.T) {
	dir := t.TempDir()
	for i, n := range []int{10, 10, 5, 1} {
		f := writeSeries(t, filepath.Join(dir, fmt.Sprintf("counter_%d.db", i)), Current, 0, n)
		f.Close()
	}
	r := NewReaderWith(ReaderOptions{MaxFiles: 3, MaxSeries: 18})
	defer r.Close()
	for scan := range 2 { // the second scan, from the cache, agrees
		files, skipped, err := r.ScanDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, fs := range files {
			got = append(got, fmt.Sprintf("%s:%d", filepath.Base(fs.Path), len(fs.Samples)))
		}
		if want := "counter_0.db:10 counter_2.db:5"; strings.Join(got, " ") != want {
			t.Errorf("scan %d: read %q, want %q", scan, got, want)
		}
		kinds := map[string]string{}
		for _, s := range skipped {
			kinds[filepath.Base(s.Path)] = s.Kind()
		}
		if kinds["counter_1.db"] != "too-many-series" || kinds["counter_3.db"] != "too-many-files" || len(kinds) != 2 {
			t.Errorf("scan %d: skipped %v", scan, skipped)
		}
		if st := r.Stats(); st.Keys != 10 {
			t.Errorf("scan %d: %d keys interned, want 10 (none of the skipped file's)", scan, st.Keys)
		}
		if sk := r.Skipped(); len(sk) != len(skipped) {
			t.Errorf("Skipped() = %v, want %v", sk, skipped)
		}
	}

	r2 := NewReaderWith(ReaderOptions{MaxFileBytes: 200})
	defer r2.Close()
	files, skipped, _ := r2.ScanDir(dir)
	if len(files) != 1 || filepath.Base(files[0].Path) != "counter_3.db" || len(skipped) != 3 {
		t.Fatalf("MaxFileBytes 200: files %v, skipped %v", files, skipped)
	}
	for _, s := range skipped {
		if s.Kind() != "file-too-large" {
			t.Errorf("%s: %v", s.Path, s.Reason)
		}
	}

	unlimited := NewReaderWith(ReaderOptions{MaxFiles: -1, MaxFileBytes: -1, MaxSeries: -1})
	defer unlimited.Close()
	if files, skipped, _ := unlimited.ScanDir(dir); len(files) != 4 || len(skipped) != 0 {
		t.Errorf("no limits: %d files, skipped %v", len(files), skipped)
	}
}

// TestReaderOwners: with Owners set, a file of another user is skipped.
// chown needs root: CI runs as root, so there the test fails rather than
// skips.
func TestReaderOwners(t *testing.T) {
	dir := t.TempDir()
	f := writeSeries(t, filepath.Join(dir, "counter_0a.db"), Current, 0, 2)
	f.Close()
	theirs := filepath.Join(dir, "counter_1a.db")
	f = writeSeries(t, theirs, Current, 0, 2)
	f.Close()
	const nobody = 65534
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatalf("chown (needs root, as make test runs; euid %d): %v", os.Geteuid(), err)
	}
	me := os.Geteuid()
	for _, tc := range []struct {
		owners []int
		files  int
		kind   string
	}{
		{nil, 2, ""},
		{[]int{me}, 1, "foreign-owner"},
		{[]int{me, nobody}, 2, ""},
	} {
		r := NewReaderWith(ReaderOptions{Owners: tc.owners})
		files, skipped, err := r.ScanDir(dir)
		r.Close()
		if err != nil || len(files) != tc.files {
			t.Errorf("Owners %v: %d files, %v", tc.owners, len(files), err)
		}
		if tc.kind != "" && (len(skipped) != 1 || skipped[0].Path != theirs || skipped[0].Kind() != tc.kind) {
			t.Errorf("Owners %v: skipped %v", tc.owners, skipped)
		}
	}
}

func TestSkipKinds(t *testing.T) {
	kinds := SkipKinds()
	for _, k := range skipKinds {
		if got := (SkippedFile{Reason: fmt.Errorf("x: %w: detail", k.err)}).Kind(); got != k.name {
			t.Errorf("Kind of %v = %q", k.err, got)
		}
	}
	if got := (SkippedFile{Reason: os.ErrPermission}).Kind(); got != "error" || kinds[len(kinds)-1] != "error" {
		t.Errorf("Kind of an I/O error = %q; kinds %v", got, kinds)
	}
}
