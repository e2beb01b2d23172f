package mmapstore

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The file-level interop oracle: Debian's python3-prometheus-client (0.16,
// legacy layout), run with /usr/bin/python3. make test installs it; without it the
// tests fail.
const systemPython = "/usr/bin/python3"

func needPython(t *testing.T) {
	t.Helper()
	err := exec.Command(systemPython, "-c", "import prometheus_client.mmap_dict").Run()
	if err == nil {
		return
	}
	t.Fatalf("needs %s with prometheus_client (make deps installs python3-prometheus-client): %v", systemPython, err)
}

// pyDump is Python's own reading of every *.db file of a directory.
const pyDump = `
import json, os, sys
from prometheus_client.mmap_dict import MmapedDict
d = sys.argv[1]
out = {}
for name in sorted(os.listdir(d)):
    if name.endswith('.db'):
        out[name] = [[t[0], t[1]] for t in MmapedDict.read_all_values_from_file(os.path.join(d, name))]
json.dump(out, sys.stdout)
`

func pythonRead(t *testing.T, dir string) map[string][][2]any {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", pyDump, dir).Output()
	if err != nil {
		t.Fatalf("python reader: %v", err)
	}
	var m map[string][][2]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// compareWithPython checks that ReadFile sees, in every file of dir, exactly
// the (key, value) pairs Python's reader sees, with keys re-encoded by
// EncodeKey byte for byte as Python wrote them.
func compareWithPython(t *testing.T, dir string, wantLayout Layout) {
	t.Helper()
	py := pythonRead(t, dir)
	if len(py) == 0 {
		t.Fatal("python saw no files")
	}
	for name, entries := range py {
		fs, err := ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fs.Layout != wantLayout && len(fs.Samples) > 0 {
			t.Errorf("%s: layout %v", name, fs.Layout)
		}
		if len(fs.Samples) != len(entries) {
			t.Errorf("%s: %d samples, python %d", name, len(fs.Samples), len(entries))
			continue
		}
		for i, s := range fs.Samples {
			names, values := make([]string, len(s.Key.Labels)), make([]string, len(s.Key.Labels))
			for j, l := range s.Key.Labels {
				names[j], values[j] = l.Name, l.Value
			}
			key := string(EncodeKey(s.Key.Family, s.Key.Sample, names, values, s.Key.Help))
			if key != entries[i][0] || s.Value != entries[i][1] {
				t.Errorf("%s entry %d:\n go %s = %v\n py %s = %v", name, i, key, s.Value, entries[i][0], entries[i][1])
			}
		}
	}
}

// TestPythonWritesGoReads: several Python processes write their files at once
// (counters with awkward label values, a counter big enough to make the file
// grow, gauges of every 0.16 mode, a histogram, a summary); ReadFile and
// ScanDir read them all as Python itself does.
func TestPythonWritesGoReads(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	const script = `
import os, sys
os.environ['PROMETHEUS_MULTIPROC_DIR'] = sys.argv[1]
from prometheus_client import Counter, Gauge, Histogram, Summary
n = int(sys.argv[2])
c = Counter('http_requests', 'Requests "served" \u00e9', ['route', 'code'])
c.labels('/caf\u00e9 "q" \\ <a&b>\n', '200').inc(n)
c.labels('/emoji/\U0001F600', '404').inc(0.5)
big = Counter('big', 'A help text that repeats. ' * 4, ['i'])
for i in range(1500):
    big.labels(str(i)).inc(i + n)
for mode in ('all', 'liveall', 'min', 'livemin', 'max', 'livemax', 'sum', 'livesum'):
    Gauge('g_' + mode, 'Gauge ' + mode, ['kind'], multiprocess_mode=mode).labels('x').set(n)
h = Histogram('lat', 'Latency', ['route'])
h.labels('/x').observe(0.3 * n)
Summary('sz', 'Sizes').observe(n)
`
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for n := 1; n <= 3; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command(systemPython, "-c", script, dir, fmt.Sprint(n)).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("python writer %d: %v\n%s", n, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	compareWithPython(t, dir, Legacy)

	r := NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) != 0 || len(files) != 3*11 { // counter, 8 gauges, histogram, summary
		t.Fatalf("ScanDir: %d files, %v, %v", len(files), skipped, err)
	}
	total := 0.0
	for _, fs := range files {
		for _, s := range fs.Samples {
			if fs.Type == "counter" && s.Key.Sample == "http_requests_total" && strings.HasPrefix(s.Key.Labels[1].Value, "/caf") {
				total += s.Value
			}
		}
	}
	if total != 6 {
		t.Errorf("counter over 3 processes = %v, want 6", total)
	}
}

// TestGoWritesPythonReads: legacy files written here (escapes, a 65,536-byte
// key, growth, a reopened file) read by Python's reader and its collector.
func TestGoWritesPythonReads(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "counter_0a.db")
	f, err := Open(path, Options{Layout: Legacy})
	if err != nil {
		t.Fatal(err)
	}
	add := func(f *File, key []byte, v float64) {
		c, err := f.Cell(key)
		if err != nil {
			t.Fatal(err)
		}
		c.Add(v)
	}
	add(f, EncodeKey("m", "m_total", []string{"b", "a", "Z"}, []string{"x\"\n\\/<>&é😀\x01\x7f", "2", "3"}, "help \"q\" é"), 1.5)
	add(f, EncodeKey("huge", "huge_total", []string{"v"}, []string{strings.Repeat("v", 65536-40)}, ""), 2)
	for i := range 3000 {
		add(f, EncodeKey("big", "big_total", []string{"i"}, []string{fmt.Sprint(i)}, strings.Repeat("help ", 20)), float64(i))
	}
	f.Close()
	f, err = Open(path, Options{}) // a restarted worker continues it (in its layout)
	if err != nil {
		t.Fatal(err)
	}
	add(f, EncodeKey("big", "big_total", []string{"i"}, []string{"0"}, strings.Repeat("help ", 20)), 100)
	add(f, EncodeKey("after", "after_total", nil, nil, ""), 1)
	f.Close()
	g, _ := Open(filepath.Join(dir, "gauge_livesum_0a.db"), Options{Layout: Legacy})
	add(g, EncodeKey("g", "g", nil, nil, "gauge"), 7)
	g.Close()

	compareWithPython(t, dir, Legacy)

	// Python's collector reads the directory without complaint.
	const collect = `
import sys
from prometheus_client.multiprocess import MultiProcessCollector
for m in MultiProcessCollector(None, path=sys.argv[1]).collect():
    for s in m.samples:
        if s.name in ('after_total', 'g', 'm_total'):
            print(s.name, s.value)
`
	out, err := exec.Command(systemPython, "-c", collect, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("python collector: %v\n%s", err, out)
	}
	for _, want := range []string{"after_total 1.0", "g 7.0", "m_total 1.5"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("collector output lacks %q:\n%s", want, out)
		}
	}
}
