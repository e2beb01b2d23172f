package mmapstore

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadFile feeds arbitrary bytes to both readers: the one-shot ReadFile
// and the mapping, caching Reader. Neither may panic or read past the file's
// end (a read past a slice's end panics; past the mapping's end it faults, and
// ScanDir's fault guard would report it as a skip, which the comparison with
// ReadFile then catches), and they must agree, also with refParse, the
// two-walk layout detection that the one-pass parse replaces. The seed corpus
// is in testdata/fuzz/FuzzReadFile. A bounded run:
//
//	go test -run '^$' -fuzz FuzzReadFile -fuzztime 30s ./mmapstore/
func FuzzReadFile(f *testing.F) {
	f.Add([]byte{})
	f.Add(ambiguousFile(string(EncodeKey("a", "a_total", nil, nil, "h")), string(EncodeKey("a", "a_total", []string{"x"}, []string{"1"}, ""))))
	f.Add(ambiguousFile(string(EncodeKey("a", "a_total", nil, nil, "h")), `[1, 2, 3, 4]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameParse(t, data)
		dir := t.TempDir()
		path := filepath.Join(dir, "counter_1.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		one, err := ReadFile(path)
		if err != nil && !errors.Is(err, ErrEmptyFile) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("ReadFile: unexpected error kind: %v", err)
		}
		r := NewReader()
		defer r.Close()
		for range 2 { // the second scan goes through the cached path
			files, skipped, scanErr := r.ScanDir(dir)
			if scanErr != nil {
				t.Fatal(scanErr)
			}
			if err != nil {
				if len(files) != 0 || len(skipped) != 1 {
					t.Fatalf("ReadFile failed (%v) but ScanDir returned %d files, %d skipped", err, len(files), len(skipped))
				}
				continue
			}
			if len(files) != 1 || len(skipped) != 0 {
				t.Fatalf("ReadFile succeeded but ScanDir returned %d files, skipped %v", len(files), skipped)
			}
			got := files[0]
			if got.Layout != one.Layout || len(got.Samples) != len(one.Samples) {
				t.Fatalf("ScanDir %v/%d samples, ReadFile %v/%d", got.Layout, len(got.Samples), one.Layout, len(one.Samples))
			}
			for i, s := range got.Samples {
				o := one.Samples[i]
				if !sameFloat(s.Value, o.Value) || !sameFloat(s.Timestamp, o.Timestamp) || sampleID(s.Key) != sampleID(o.Key) {
					t.Fatalf("sample %d: ScanDir %+v, ReadFile %+v", i, s, o)
				}
			}
		}
		if err == nil {
			// Whatever parsed is a well-formed key: it re-encodes and decodes
			// to the same thing.
			for _, s := range one.Samples {
				names, values := make([]string, len(s.Key.Labels)), make([]string, len(s.Key.Labels))
				for i, l := range s.Key.Labels {
					names[i], values[i] = l.Name, l.Value
				}
				k, derr := DecodeKey(EncodeKey(s.Key.Family, s.Key.Sample, names, values, s.Key.Help))
				if derr != nil || sampleID(&k) != sampleID(s.Key) || k.Family != s.Key.Family || k.Help != s.Key.Help {
					t.Fatalf("key %+v does not re-encode: %v", *s.Key, derr)
				}
			}
		}
	})
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
