package mmapstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestRemoveLeftoversByID: leftovers of one id go, those of the others and
// everything that is not a leftover stay; id "" takes every leftover.
func TestRemoveLeftoversByID(t *testing.T) {
	dir := t.TempDir()
	keep := []string{
		"counter_0a.db", "gauge_livesum_0a.db", // metric files
		"README", ".hidden", "counter_0a.db.tmp-1", // not leftovers
		".counter_0a.db.tmp-", ".counter_0a.db.tmp-12x", "counter_0a.db.corrupt-", "counter_0a.db.corrupt-x1",
		".junk_0a.db.tmp-1", "info_0a.db.corrupt-1", // no metric file name inside
		".counter_0a.tmp-1", // no .db
	}
	of0a := []string{".counter_0a.db.tmp-123", ".gauge_livesum_0a.db.tmp-4", "histogram_0a.db.corrupt-1700000000000000000"}
	of1b := []string{".counter_1b.db.tmp-9", "summary_1b.db.corrupt-5"}
	for _, n := range slices.Concat(keep, of0a, of1b) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Not regular files, even with a leftover's name: left alone.
	if err := os.Mkdir(filepath.Join(dir, ".counter_2a.db.tmp-1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "counter_2a.db.corrupt-1")); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, ".counter_2a.db.tmp-1", "counter_2a.db.corrupt-1")

	n, err := RemoveLeftovers(dir, "0a")
	if err != nil || n != len(of0a) {
		t.Fatalf("RemoveLeftovers(0a) = %d, %v; want %d", n, err, len(of0a))
	}
	want := slices.Sorted(slices.Values(slices.Concat(keep, of1b)))
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after id 0a:\n got %q\nwant %q", got, want)
	}
	n, err = RemoveLeftovers(dir, "")
	if err != nil || n != len(of1b) {
		t.Fatalf("RemoveLeftovers(\"\") = %d, %v; want %d", n, err, len(of1b))
	}
	want = slices.Sorted(slices.Values(keep))
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after all ids:\n got %q\nwant %q", got, want)
	}
	if _, err := RemoveLeftovers(filepath.Join(dir, "nope"), ""); err == nil {
		t.Error("RemoveLeftovers of a missing directory: no error")
	}
}

// TestRemoveLeftoversOfMovedAsideFile: the corrupt file that Open moved aside
// is a leftover of its id.
func TestRemoveLeftoversOfMovedAsideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_3a.db")
	if err := os.WriteFile(path, []byte("not a metric file, but long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.MovedAside() == "" {
		t.Fatal("the corrupt file was not moved aside")
	}
	if n, err := RemoveLeftovers(dir, "3b"); n != 0 || err != nil {
		t.Errorf("another id's call removed %d: %v", n, err)
	}
	if n, err := RemoveLeftovers(dir, "3a"); n != 1 || err != nil {
		t.Errorf("RemoveLeftovers(3a) = %d, %v; want 1", n, err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"counter_3a.db"}) {
		t.Errorf("directory holds %q", got)
	}
}

// makingChild starts making the file at path and stops for good in the
// middle, after the temporary file exists and before it is renamed into
// place: the state of a worker killed while it makes a file.
func makingChild(path string) int {
	_, err := Open(path, Options{fallocate: func(int, uint32, int64, int64) error {
		fmt.Println("making")
		io.Copy(io.Discard, os.Stdin) // until the parent kills us
		return unix.EIO
	}})
	fmt.Fprintln(os.Stderr, "Open returned:", err)
	return 1
}

// TestRemoveLeftoversOfKilledMaker: a process killed while it makes a file
// leaves its temporary file; it is kept while its maker lives, and removed
// once the maker is dead.
func TestRemoveLeftoversOfKilledMaker(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=making|"+filepath.Join(dir, "counter_4a.db"))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "making\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	names := listDir(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".counter_4a.db.tmp-") {
		t.Fatalf("while making: directory holds %q", names)
	}
	if n, err := RemoveLeftovers(dir, ""); n != 0 || err != nil {
		t.Errorf("the file of a live maker was removed (%d, %v)", n, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v", err)
	}
	if n, err := RemoveLeftovers(dir, "4a"); n != 1 || err != nil {
		t.Errorf("RemoveLeftovers after the maker's death = %d, %v; want 1", n, err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "counter_4a.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metric file: %v", err)
	}
}
