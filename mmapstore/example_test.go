package mmapstore_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/herdhttp/herd/mmapstore"
)

// A worker writes a counter; the master reads the directory.
func Example() {
	dir, err := os.MkdirTemp("", "mmapstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	f, err := mmapstore.Open(filepath.Join(dir, "counter_0a.db"), mmapstore.Options{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	key := mmapstore.EncodeKey("http_requests", "http_requests_total", []string{"code"}, []string{"200"}, "Requests.")
	c, err := f.Cell(key) // once per series; cache the *Cell
	if err != nil {
		panic(err) // e.g. a full disk
	}
	c.Add(1) // the hot path: lock-free, no allocation, no syscall
	c.Add(2)

	r := mmapstore.NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil {
		panic(err)
	}
	for _, fs := range files {
		for _, s := range fs.Samples {
			fmt.Println(fs.Type, fs.ID, s.Key.Sample, s.Key.Labels, s.Value)
		}
	}
	fmt.Println("skipped:", len(skipped))
	// Output:
	// counter 0a http_requests_total [{code 200}] 3
	// skipped: 0
}

func ExampleEncodeKey() {
	fmt.Printf("%s\n", mmapstore.EncodeKey("m", "m_total", []string{"b", "a"}, []string{"é😀", "<&>"}, "help"))
	// Output: ["m", "m_total", {"a": "<&>", "b": "\u00e9\ud83d\ude00"}, "help"]
}

// A supervisor removes what writers left behind: every leftover before its
// workers start, one worker's after that worker exits.
func ExampleRemoveLeftovers() {
	dir, err := os.MkdirTemp("", "mmapstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{
		"counter_0a.db",                               // a metric file: never removed
		".counter_0a.db.tmp-123",                      // worker 0a was killed while it made a file
		"gauge_all_1a.db.corrupt-1700000000000000000", // worker 1a moved a corrupt file aside
	} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}

	n, err := mmapstore.RemoveLeftovers(dir, "0a") // worker 0a exited
	fmt.Println(n, err)
	n, err = mmapstore.RemoveLeftovers(dir, "") // before any worker starts
	fmt.Println(n, err)
	// Output:
	// 1 <nil>
	// 1 <nil>
}

// A reader of a directory that others write limits what it takes, and says
// why it skipped a file.
func ExampleNewReaderWith() {
	dir, err := os.MkdirTemp("", "mmapstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	for _, id := range []string{"1", "2", "3"} {
		f, err := mmapstore.Open(filepath.Join(dir, "counter_"+id+".db"), mmapstore.Options{})
		if err != nil {
			panic(err)
		}
		c, _ := f.Cell(mmapstore.EncodeKey("jobs", "jobs_total", nil, nil, "Jobs."))
		c.Add(1)
		f.Close()
	}

	r := mmapstore.NewReaderWith(mmapstore.ReaderOptions{
		MaxFiles: 2,                      // files per scan
		Owners:   []int{os.Geteuid(), 0}, // files of other users are skipped
	})
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil {
		panic(err)
	}
	fmt.Println("read:", len(files))
	for _, s := range skipped {
		fmt.Println("skipped:", filepath.Base(s.Path), s.Kind())
	}
	// Output:
	// read: 2
	// skipped: counter_3.db too-many-files
}
