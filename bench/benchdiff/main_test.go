package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkChi/static/none-2         	 2000000	       490.0 ns/op	       480.0 cpu-ns/op	     400 B/op	       4 allocs/op
BenchmarkChi/static/herd-2         	 2000000	       600.0 ns/op	       560.0 cpu-ns/op	     400 B/op	       4 allocs/op
BenchmarkChi/static/none-2         	 2000000	       500.0 ns/op	       470.0 cpu-ns/op	     400 B/op	       4 allocs/op
BenchmarkChi/static/herd-2         	 2000000	       580.0 ns/op	       550.0 cpu-ns/op	     400 B/op	       4 allocs/op
BenchmarkChi/static/none-2         	 2000000	       700.0 ns/op	       490.0 cpu-ns/op	     400 B/op	       4 allocs/op
BenchmarkChi/static/herd-2         	 2000000	       760.0 ns/op	       575.0 cpu-ns/op	     400 B/op	       4 allocs/op
PASS
`

func TestReport(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"Chi/static/herd=Chi/static/none"}, strings.NewReader(sample), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	if !strings.HasPrefix(got, sample) {
		t.Errorf("the input is not passed through first:\n%s", got)
	}
	for _, want := range []string{
		"Chi/static/herd over Chi/static/none (medians of 3 runs",
		// ns/op: paired differences 110, 80, 60; medians 600 and 500.
		"ns/op       +80  (Chi/static/herd 600, Chi/static/none 500)  paired +60 … +110",
		"cpu-ns/op   +80  (Chi/static/herd 560, Chi/static/none 480)  paired +80 … +85",
		"allocs/op   +0  (Chi/static/herd 4, Chi/static/none 4)  paired +0 … +0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Units in the usual order.
	if strings.Index(got, "  ns/op") > strings.Index(got, "  cpu-ns/op") || strings.Index(got, "  B/op") > strings.Index(got, "  allocs/op") {
		t.Errorf("units out of order:\n%s", got)
	}
}

func TestMissingAndFailed(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"Chi/static/herd=Nope"}, strings.NewReader(sample), &out, &errb); code != 1 || !strings.Contains(errb.String(), `no benchmark "Nope"`) {
		t.Errorf("missing benchmark: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"Chi/static/herd=Chi/static/none"}, strings.NewReader(sample+"FAIL\n"), &out, &errb); code != 1 {
		t.Errorf("failed run: exit %d, want 1", code)
	}
	for _, args := range [][]string{nil, {"x"}, {"=y"}} {
		if code := run(args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}
