package mmapstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Two Files on one path would both append entries at the same offsets and corrupt each
// other (two Registries given one Dir and ID, a worker id reused while its process runs).
// Open takes an exclusive flock, so the second one fails clearly.
func TestSecondFileOnOnePathFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	key := EncodeKey("c", "c_total", nil, nil, "h")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.Cell(key)
	c.Add(2)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	c.Add(1) // the first File is untouched
	if got := readValue(t, path, key); got != 3 {
		t.Errorf("value %v, want 3", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path, Options{}) // closed: the lock is gone, the file is continued
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer g.Close()
	c, _ = g.Cell(key)
	if c.Load() != 3 || g.Created() {
		t.Errorf("continued value %v, created %v", c.Load(), g.Created())
	}
}

// holdChild opens path and holds it until its standard input closes or it is killed.
func holdChild(path string) int {
	f, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := f.Cell(EncodeKey("c", "c_total", nil, nil, "h"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.Add(7)
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0 // exits without Close: the kernel drops the lock
}

// The lock works across processes and dies with its process, however it dies.
func TestLockAcrossProcessesAndDeath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=hold|"+path)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while another process holds the file: %v, want ErrLocked", err)
	}
	// Readers take no lock.
	if fs, err := ReadFile(path); err != nil || len(fs.Samples) != 1 || fs.Samples[0].Value != 7 {
		t.Errorf("ReadFile of a held file: %+v, %v", fs, err)
	}
	r := NewReader()
	defer r.Close()
	if files, skipped, err := r.ScanDir(filepath.Dir(path)); err != nil || len(skipped) != 0 || len(files) != 1 {
		t.Errorf("ScanDir of a held file: %d files, %v, %v", len(files), skipped, err)
	}
	cmd.Process.Kill() // SIGKILL: no Close, no cleanup of any kind
	cmd.Wait()
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	defer f.Close()
	if c, _ := f.Cell(EncodeKey("c", "c_total", nil, nil, "h")); c.Load() != 7 {
		t.Errorf("continued value %v, want 7", c.Load())
	}
}

// Check must not replace a file that another File wrote at its path (after a fixture
// removed the first one's file): it reports ErrLocked and recreates once the other is gone.
func TestCheckDoesNotClobberAnotherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	key := EncodeKey("c", "c_total", nil, nil, "h")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, _ := f.Cell(key)
	c.Add(1)
	os.Remove(path)
	g, err := Open(path, Options{}) // a second writer creates a new file there
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := g.Cell(key)
	gc.Add(10)
	if ok, err := f.Check(); ok || !errors.Is(err, ErrLocked) {
		t.Errorf("Check with another writer's file at the path = %v, %v; want false, ErrLocked", ok, err)
	}
	if got := readValue(t, path, key); got != 10 {
		t.Errorf("the other writer's file was changed: %v", got)
	}
	g.Close()
	if ok, err := f.Check(); !ok || err != nil {
		t.Errorf("Check once the other writer closed = %v, %v; want a recreation", ok, err)
	}
	if got := readValue(t, path, key); got != 1 {
		t.Errorf("recreated value %v, want 1", got)
	}
}

// client_python's reader is not affected by the lock.
func TestPythonReadsHeldFile(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	f, err := Open(filepath.Join(dir, "counter_0a.db"), Options{Layout: Legacy})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, _ := f.Cell(EncodeKey("c", "c_total", nil, nil, "h"))
	c.Add(5)
	got := pythonRead(t, dir)
	if e := got["counter_0a.db"]; len(e) != 1 || e[0][1] != 5.0 {
		t.Errorf("python read %v", got)
	}
}

// A lock that is released a moment after Open finds it held (a closed
// writer's descriptor still shared with a child process that has not yet
// exec'd) is waited for, not reported as a second writer.
func TestOpenWaitsOutABrieflyHeldLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_1.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	held := 3
	flock := func(fd int, how int) error {
		if held > 0 {
			held--
			return unix.EWOULDBLOCK
		}
		return unix.Flock(fd, how)
	}
	g, err := Open(path, Options{flock: flock})
	if err != nil {
		t.Fatalf("Open while the lock is held for three tries: %v", err)
	}
	g.Close()
	if held != 0 {
		t.Errorf("%d tries left, want 0", held)
	}
}
