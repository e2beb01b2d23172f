package mmapstore

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkedExampleGoldenBytes writes mmap-format.md's worked example and
// compares the bytes: Counter('c', 'help'), one inc(), in counter_42.db.
func TestWorkedExampleGoldenBytes(t *testing.T) {
	want := []byte{
		0x40, 0, 0, 0, 0, 0, 0, 0, // used = 64
		0x1c, 0, 0, 0, // klen = 28
	}
	want = append(want, `["c", "c_total", {}, "help"]`...)
	want = append(want, "        "...)                // 8 spaces, not 0
	want = append(want, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f) // 1.0
	want = append(want, 0, 0, 0, 0, 0, 0, 0, 0)       // timestamp 0.0
	path := filepath.Join(t.TempDir(), "counter_42.db")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Cell(EncodeKey("c", "c_total", nil, nil, "help"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != initialSize {
		t.Errorf("file size %d, want %d", len(got), initialSize)
	}
	if !bytes.Equal(got[:len(want)], want) {
		t.Errorf("bytes:\n got % x\nwant % x", got[:len(want)], want)
	}
	if rest := got[len(want):]; !bytes.Equal(rest, make([]byte, len(rest))) {
		t.Error("bytes after used are not zero")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// The same in the legacy layout: no timestamp, used = 56.
	legacy := append([]byte{0x38}, want[1:len(want)-8]...)
	path = filepath.Join(t.TempDir(), "counter_42.db")
	f, err = Open(path, Options{Layout: Legacy})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, _ = f.Cell(EncodeKey("c", "c_total", nil, nil, "help"))
	c.SetWithTimestamp(1, 12345) // the timestamp has nowhere to go
	got, _ = os.ReadFile(path)
	if !bytes.Equal(got[:len(legacy)], legacy) || !bytes.Equal(got[len(legacy):len(legacy)+8], make([]byte, 8)) {
		t.Errorf("legacy bytes:\n got % x\nwant % x", got[:len(legacy)+8], legacy)
	}
}

func TestPadding(t *testing.T) {
	for klen := 1; klen <= 24; klen++ {
		p := padLen(klen)
		if p < 1 || p > 8 || (4+klen+p)%8 != 0 {
			t.Errorf("padLen(%d) = %d", klen, p)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, layout := range []Layout{Current, Legacy} {
		t.Run(layout.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gauge_mostrecent_7a.db")
			f, err := Open(path, Options{Layout: layout})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !f.Created() || f.Layout() != layout {
				t.Errorf("Created() = %v, Layout() = %v", f.Created(), f.Layout())
			}
			type kv struct {
				key    []byte
				v, ts  float64
				labels int
			}
			var want []kv
			for i := range 50 {
				key := EncodeKey("g", "g", []string{"i", "x"}, []string{fmt.Sprint(i), strings.Repeat("é", i)}, "help")
				c, err := f.Cell(key)
				if err != nil {
					t.Fatal(err)
				}
				again, _ := f.Cell(key)
				if again != c {
					t.Fatal("Cell returned a different handle for the same key")
				}
				c.Add(float64(i))
				c.Add(0.5)
				ts := 0.0
				if i%2 == 0 {
					ts = 1e9 + float64(i)
					c.SetWithTimestamp(float64(i)+0.5, ts)
				}
				if c.Load() != float64(i)+0.5 {
					t.Fatalf("Load = %v", c.Load())
				}
				if layout == Legacy {
					ts = 0
				}
				want = append(want, kv{key, float64(i) + 0.5, ts, 2})
			}
			if f.Len() != 50 {
				t.Errorf("Len = %d", f.Len())
			}
			fs, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Type != "gauge" || fs.Mode != "mostrecent" || fs.ID != "7a" || fs.Layout != layout {
				t.Errorf("ReadFile header fields: %+v", fs)
			}
			if len(fs.Samples) != len(want) {
				t.Fatalf("%d samples, want %d", len(fs.Samples), len(want))
			}
			for i, s := range fs.Samples {
				k, _ := DecodeKey(want[i].key)
				if s.Key.Family != k.Family || len(s.Key.Labels) != 2 || s.Key.Labels[0].Value != fmt.Sprint(i) ||
					s.Value != want[i].v || s.Timestamp != want[i].ts {
					t.Errorf("sample %d = %+v %+v, want %+v", i, s, *s.Key, want[i])
				}
			}
		})
	}
}

func TestCellRejectsBadKey(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "counter_1.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, key := range []string{"", "not json", `["a", "b", {}]`} {
		if _, err := f.Cell([]byte(key)); err == nil {
			t.Errorf("Cell(%q) succeeded", key)
		}
	}
}

func TestZeroCell(t *testing.T) {
	var c Cell
	c.Add(1)
	c.Set(2)
	c.SetWithTimestamp(3, 4)
	if c.Load() != 0 {
		t.Error("zero Cell kept a value")
	}
}

func TestCellsDetachedAfterClose(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "counter_1.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.Cell(EncodeKey("c", "c_total", nil, nil, ""))
	c.Add(2)
	f.Close()
	c.Add(1) // must not fault
	if c.Load() != 3 {
		t.Errorf("Load after Close = %v", c.Load())
	}
	if _, err := f.Cell(EncodeKey("d", "d_total", nil, nil, "")); err == nil {
		t.Error("Cell after Close succeeded")
	}
}

func TestReopenContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter_0a.db")
	key := EncodeKey("c", "c_total", []string{"a"}, []string{"1"}, "h")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.Cell(key)
	c.Add(41)
	f.Close()

	f, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Created() {
		t.Error("reopen created a new file")
	}
	c, _ = f.Cell(key)
	c.Add(1)
	if c.Load() != 42 || f.Len() != 1 {
		t.Errorf("reopened value %v, %d entries", c.Load(), f.Len())
	}
}

// goldenDir holds files written by the real client_python (current layout).
const goldenDir = "../testdata/client_python"

func TestReadGoldenClientPython(t *testing.T) {
	dir := filepath.Join(goldenDir, "mpdir")
	names, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil || len(names) != 26 {
		t.Fatalf("golden files: %d, %v", len(names), err)
	}
	sums := map[string]float64{} // over counter, histogram and summary files
	for _, name := range names {
		fs, err := ReadFile(name)
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", name, err)
		}
		if fs.Layout != Current || fs.Type == "" || len(fs.Samples) == 0 {
			t.Errorf("%s: %+v", name, fs)
		}
		if fs.Type == "gauge" {
			continue
		}
		for _, s := range fs.Samples {
			sums[sampleID(s.Key)] += s.Value
		}
	}
	want := map[string]float64{
		`http_requests_total{code="200",method="GET",route="/hello"}`:                30,
		`http_requests_total{code="200",method="GET",route="/users/{id}"}`:           9,
		`http_requests_total{code="500",method="POST",route="/café \"q\" \\ <a&b>"}`: 3,
		`http_requests_total{code="404",method="GET",route="/emoji/😀"}`:              1.5,
		`big_total{i="0"}`:      3,
		`big_total{i="299"}`:    601,
		`payload_bytes_count{}`: 4,
		`payload_bytes_sum{}`:   314,
		`http_request_duration_seconds_bucket{le="+Inf",route="/hello"}`:  2,
		`http_request_duration_seconds_bucket{le="0.005",route="/hello"}`: 2,
	}
	for id, v := range want {
		if sums[id] != v {
			t.Errorf("%s = %v, want %v", id, sums[id], v)
		}
	}
	if s := sums[`http_request_duration_seconds_sum{route="/hello"}`]; math.Abs(s-46.643) > 1e-9 {
		t.Errorf("histogram sum = %v", s)
	}

	// ScanDir sees the same files, none skipped.
	r := NewReader()
	defer r.Close()
	files, skipped, err := r.ScanDir(dir)
	if err != nil || len(skipped) != 0 || len(files) != 26 {
		t.Fatalf("ScanDir: %d files, skipped %v, %v", len(files), skipped, err)
	}
	for _, fs := range files {
		one, _ := ReadFile(fs.Path)
		if len(one.Samples) != len(fs.Samples) || fs.Type != one.Type || fs.Mode != one.Mode || fs.ID != one.ID {
			t.Errorf("%s: ScanDir and ReadFile disagree", fs.Path)
			continue
		}
		for i := range fs.Samples {
			a, b := fs.Samples[i], one.Samples[i]
			if a.Value != b.Value || a.Timestamp != b.Timestamp || sampleID(a.Key) != sampleID(b.Key) {
				t.Errorf("%s sample %d: %+v vs %+v", fs.Path, i, a, b)
			}
		}
	}
}

func sampleID(k *Key) string {
	var b strings.Builder
	b.WriteString(k.Sample + "{")
	for i, l := range k.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

func TestParseFileName(t *testing.T) {
	tests := []struct {
		name, typ, mode, id string
		ok                  bool
	}{
		{"counter_0a.db", "counter", "", "0a", true},
		{"histogram_123.db", "histogram", "", "123", true},
		{"summary_9b.db", "summary", "", "9b", true},
		{"gauge_livesum_1a.db", "gauge", "livesum", "1a", true},
		{"gauge_all_1.db", "gauge", "all", "1", true},
		{"gauge_weird_1.db", "", "", "", false},
		{"gauge_1.db", "", "", "", false},
		{"counter_a_b.db", "", "", "", false},
		{"counter_.db", "", "", "", false},
		{"info_1.db", "", "", "", false},
		{"counter_1.db.corrupt-5", "", "", "", false},
	}
	for _, tt := range tests {
		typ, mode, id, ok := ParseFileName(tt.name)
		if typ != tt.typ || mode != tt.mode || id != tt.id || ok != tt.ok {
			t.Errorf("ParseFileName(%q) = %q %q %q %v", tt.name, typ, mode, id, ok)
		}
		if ok && FileName(typ, mode, id) != tt.name {
			t.Errorf("FileName(%q, %q, %q) = %q", typ, mode, id, FileName(typ, mode, id))
		}
	}
}
