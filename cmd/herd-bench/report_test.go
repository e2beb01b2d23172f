package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testReport is a fixed two-scenario report with one error round and one
// failed layout.
func testReport() report {
	scs := []scenario{
		{Name: "unpinned", Cores: 2, Threads: 2, Description: "server and wrk share CPUs 0-1 (wrk -t2)"},
		{Name: "pinned", ServerCPUs: cpuList{1}, LoadCPUs: cpuList{0}, Cores: 1, Threads: 1, Description: "server on CPU 1, wrk on CPU 0 (wrk -t1)"},
	}
	herd, _ := parseLayouts("single,reuseport")
	nethttp, _ := parsePeer("net/http=bin/bench-nethttp -bind {addr}")
	gunicorn, _ := parsePeer("gunicorn=bench/python/run-gunicorn.sh {addr} {workers}")
	layouts := append(herd, nethttp, gunicorn)
	var rs []roundResult
	for n := 1; n <= 3; n++ {
		f := float64(n-2) * 0.02 // -2%, 0, +2%
		rs = append(rs,
			round("unpinned", "herd single", n, 60000*(1+f), 3*time.Millisecond),
			round("unpinned", "herd reuseport", n, 70000*(1+f), 2500*time.Microsecond, 35000, 35000+uint64(n)*700),
			round("unpinned", "net/http", n, 68000*(1+f), 2800*time.Microsecond),
			round("unpinned", "gunicorn", n, 4000*(1+f), 40*time.Millisecond),
			round("pinned", "herd single", n, 40000*(1+f), 4*time.Millisecond),
			round("pinned", "herd reuseport", n, 39000*(1+f), 4200*time.Microsecond, 39000),
			round("pinned", "net/http", n, 41000*(1+f), 3900*time.Microsecond),
			roundResult{Scenario: "pinned", Layout: "gunicorn", Round: n, Err: "gunicorn: not ready: 1 of 2 workers answered /healthz\nmore"},
		)
	}
	rs[2].Wrk.Non2xx = 12 // one unpinned net/http round with errors
	rs[2].Wrk.Read = 3
	// Pinned herd reuseport, round 2: another job took CPU time from the
	// server: fewer req/s, the same requests per CPU second.
	rs[13].Wrk.Requests, rs[13].ServerCPU = 31200, 720*time.Millisecond
	rep := report{
		Date:    time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC),
		Machine: machineInfo{CPUModel: "AMD EPYC", CPUs: 2, MemGiB: 23.5, OS: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.18.44", Go: "go1.26.8", Wrk: "debian/4.1.0-3+b2"},
		Command: "herd-bench -rounds 3 -peer 'net/http=bin/bench-nethttp -bind {addr}' -baseline net/http",
		Path:    "/hello", Rounds: 3, Duration: 3 * time.Second, Warmup: time.Second, Connections: 64,
		Scenarios: scs, Baseline: "net/http", BusyBefore: 0.02, Results: rs,
		Split: []string{"net/http", "herd single", "herd reuseport"},
	}
	for _, l := range layouts {
		rep.Layouts = append(rep.Layouts, l.Name)
	}
	rep.Summaries = summarize(rs, scs, layouts)
	return rep
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().writeMarkdown(&b, "results.svg"); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.md", b.Bytes())
	md := b.String()
	for _, want := range []string{
		// vs net/http: the median of the rounds' ratios, over the rounds where both were clean (1 and 2).
		"| herd reuseport | 2 × 1P | 70,000 | ±2.0% | 625µs | 2.50ms | 5.00ms | 0.90 | 0.40 | 0.01 | 77,778 | 49/51 | 1.03x | 0 |",
		// round by round: the round another job slowed shows in req/s, not in req/CPU-s.
		"| herd reuseport | 3 | 0.95x | 0.86–0.95x | 0.76–0.95x | 0.95x | 0.95–0.95x | 0.95–0.95x | 23.1µs | +1.13µs | +1.11µs … +1.14µs |",
		"| net/http → herd single | 3 | +0.549µs |",
		"| net/http | 1 process | 68,680 | ±1.0% |", // the median of the two clean rounds
		"⚠ 1 of 3 rounds, 15 requests",              // the error round is marked
		"| gunicorn | 1 worker | failed |",          // pinned gunicorn never started
		"| herd reuseport | 1.03x req/s, 0.89x p99 | 18x req/s, 0.06x p99 |",
		"![requests/s by layout](results.svg)",
		"| pinned | 1 | gunicorn |",
		"failed: gunicorn: not ready: 1 of 2 workers answered /healthz |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}

func TestSVG(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().writeSVG(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.svg", b.Bytes())
	// Well-formed XML, one bar per layout that has figures.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	rects, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			texts = append(texts, string(tok))
		}
	}
	if rects != 1+7 { // background + 7 layouts with figures
		t.Errorf("%d rects, want 8", rects)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"herd reuseport (2 × 1P)", "70,000 req/s · p99 2.50ms · 1.03x net/http", "failed", "68,680 req/s · p99 2.80ms · ⚠ errors", "80,000"} {
		if !strings.Contains(all, want) {
			t.Errorf("SVG text lacks %q", want)
		}
	}
}

func TestSVGEscapes(t *testing.T) {
	rep := testReport()
	rep.Summaries[0].Layout = `a<b & "c"`
	var b bytes.Buffer
	rep.writeSVG(&b)
	if err := xml.Unmarshal(b.Bytes(), new(struct{})); err != nil {
		t.Fatalf("SVG with markup in a name is not well-formed: %v", err)
	}
}

func TestTerminal(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().writeTerminal(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", b.Bytes())
}

func TestNiceScale(t *testing.T) {
	tests := []struct{ in, top, step float64 }{
		{71400, 80000, 10000},
		{4080, 5000, 1000},
		{3900, 4000, 500},
		{99, 100, 20},
		{1, 1, 0.2},
		{0, 1, 0.25},
	}
	for _, tt := range tests {
		top, step := niceScale(tt.in)
		if top != tt.top || step != tt.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tt.in, top, step, tt.top, tt.step)
		}
	}
}

func TestRerender(t *testing.T) {
	dir := t.TempDir()
	rep := testReport()
	if err := rep.writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-from", dir + "/results.json", "-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"results.md", "results.svg"} {
		a, _ := os.ReadFile(dir + "/" + name)
		b, err := os.ReadFile(out + "/" + name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s re-rendered from JSON differs (%v)", name, err)
		}
	}
}
