package mmapstore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a writer process; this environment
// variable, read here only, selects that role.
const childEnv = "MMAPSTORE_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if path, ok := strings.CutPrefix(spec, "hold|"); ok {
			os.Exit(holdChild(path))
		}
		if path, ok := strings.CutPrefix(spec, "making|"); ok {
			os.Exit(makingChild(path))
		}
		os.Exit(hammerChild(spec))
	}
	os.Exit(m.Run())
}

const (
	hammerGoroutines = 4
	hammerAdds       = 10000
)

// hammerChild opens the file named in spec ("path|key") and adds 1 to the
// key's cell from several goroutines. The parent holds the file (and its lock):
// the children only add to a cell it created, so they open it without the lock.
func hammerChild(spec string) int {
	path, key, _ := strings.Cut(spec, "|")
	f, err := Open(path, Options{noLock: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := f.Cell([]byte(key))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hammer(c)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func hammer(c *Cell) {
	var wg sync.WaitGroup
	for range hammerGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range hammerAdds {
				c.Add(1)
			}
		}()
	}
	wg.Wait()
}

// TestManyProcessesOneSeries: goroutines in several processes add to one
// series at once, while a reader scans; the total is exact.
func TestManyProcessesOneSeries(t *testing.T) {
	const procs = 3
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	key := EncodeKey("c", "c_total", []string{"l"}, []string{"é"}, "help")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := f.Cell(key) // the entry exists before the children open the file
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+path+"|"+string(key))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		cmds = append(cmds, cmd)
	}
	stop := make(chan struct{})
	scans := make(chan int)
	go func() { // a reader scanning concurrently must see a monotone count
		r := NewReader()
		defer r.Close()
		n, last := 0, 0.0
		for {
			select {
			case <-stop:
				scans <- n
				return
			default:
			}
			files, _, _ := r.ScanDir(dir)
			if len(files) == 1 && len(files[0].Samples) == 1 {
				v := files[0].Samples[0].Value
				if v < last {
					scans <- -1
					<-stop
					scans <- -1
					return
				}
				last = v
			}
			n++
		}
	}()
	hammer(c)
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	close(stop)
	if n := <-scans; n < 0 {
		t.Error("a scan saw the counter go backwards")
	}
	want := float64((procs + 1) * hammerGoroutines * hammerAdds)
	if c.Load() != want {
		t.Errorf("cell = %v, want %v", c.Load(), want)
	}
	if got := readValue(t, path, key); got != want {
		t.Errorf("file = %v, want %v", got, want)
	}
}

// TestFullFilesystem mounts a tiny tmpfs, fills it, and checks that running
// out of space is an error from Open and Cell, never a SIGBUS, and that the
// store recovers once space is freed. Mounting needs root: CI runs as root, so
// there the test fails rather than skips when it cannot mount.
func TestFullFilesystem(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs (needs root, as make test runs; euid %d): %v", os.Geteuid(), err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})

	f, err := Open(filepath.Join(dir, "counter_0a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{"first"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	// Python creates its files sparse; this one was made before the disk
	// filled up, and writing into its holes later would be the SIGBUS.
	sparse := filepath.Join(dir, "counter_py.db")
	if err := os.WriteFile(sparse, make([]byte, 8), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, initialSize); err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)

	var cellErr error
	n := 0
	for ; n < 100000; n++ {
		var c *Cell
		c, cellErr = f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{strconv.Itoa(n)}, strings.Repeat("h", 64)))
		if cellErr != nil {
			break
		}
		c.Add(1) // touches the new entry's page: must be backed
	}
	if !errors.Is(cellErr, unix.ENOSPC) {
		t.Fatalf("after %d new series: %v, want ENOSPC", n, cellErr)
	}
	first.Add(1) // existing series keep working
	if first.Load() != 1 {
		t.Error("existing cell broken")
	}
	if _, err := Open(filepath.Join(dir, "counter_1a.db"), Options{}); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("Open on a full disk: %v, want ENOSPC", err)
	}
	if _, err := Open(sparse, Options{}); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("Open of a sparse file on a full disk: %v, want ENOSPC", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	if fs, err := ReadFile(f.Path()); err != nil || len(fs.Samples) != n+1 {
		t.Errorf("file after ENOSPC: %d samples, want %d, %v", len(fs.Samples), n+1, err)
	}

	os.Remove(filler)
	c, err := f.Cell(EncodeKey("c", "c_total", []string{"i"}, []string{"after"}, ""))
	if err != nil {
		t.Fatalf("Cell after freeing space: %v", err)
	}
	c.Add(1)
}

func fillDisk(t *testing.T, path string) {
	t.Helper()
	fd, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := fd.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
