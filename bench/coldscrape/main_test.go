package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestColdScrape builds the program and runs it end to end on small configurations (its
// children are the built binary re-executed), then with bad flags. It checks that the
// figures are there and positive, never what they are.
func TestColdScrape(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "coldscrape")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("text", func(t *testing.T) {
		out := runOK(t, bin, "-workers", "2", "-series", "200", "-runs", "2")
		r := parseReport(t, out)
		wantIn(t, out, "2 workers x 200 series", "text 0.0.4", "2 runs")
		if r.body <= 0 {
			t.Errorf("body %d B, want > 0:\n%s", r.body, out)
		}
	})
	t.Run("prom", func(t *testing.T) {
		text := parseReport(t, runOK(t, bin, "-workers", "2", "-series", "200", "-runs", "1"))
		out := runOK(t, bin, "-workers", "2", "-series", "200", "-runs", "2", "-prom")
		r := parseReport(t, out)
		wantIn(t, out, "OpenMetrics, gzip")
		// The gzipped body of 200 series is far smaller than the text one: gzip was asked for.
		if r.body <= 0 || r.body >= text.body {
			t.Errorf("prom body %d B, text body %d B: want 0 < prom < text:\n%s", r.body, text.body, out)
		}
	})
	t.Run("gogc", func(t *testing.T) {
		out := runOK(t, bin, "-workers", "1", "-series", "10", "-runs", "1", "-gogc", "off")
		parseReport(t, out)
		wantIn(t, out, "GOGC=off", "1 run, a new process")
	})
	t.Run("warm", func(t *testing.T) {
		out := runOK(t, bin, "-workers", "2", "-series", "200", "-runs", "1", "-warm")
		for _, re := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^warm-up \(new process\): +[0-9.]+ ms wall .* CPU-ms .* minor faults .* GCs$`),
			regexp.MustCompile(`(?m)^first scrape after it: +[0-9.]+ ms wall .* CPU-ms .* minor faults .* GCs$`),
			secondRE, bodyRE, faultRE,
		} {
			if !re.MatchString(out) {
				t.Errorf("report lacks a line matching %s:\n%s", re, out)
			}
		}
	})
	t.Run("dir", func(t *testing.T) {
		// An empty directory: the body holds the gatherer's own families only.
		dir := t.TempDir()
		out := runOK(t, bin, "-dir", dir, "-runs", "1")
		if r := parseReport(t, out); r.body <= 0 {
			t.Errorf("body %d B, want > 0:\n%s", r.body, out)
		}
		wantIn(t, out, "the files of "+dir)
	})

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // in the one line on stderr
	}{
		{"runs", []string{"-runs", "0"}, "-runs"},
		{"workers", []string{"-workers", "-1"}, "-workers"},
		{"series", []string{"-series", "x"}, "-series"},
		{"unknown", []string{"-bogus"}, "bogus"},
		{"argument", []string{"extra"}, `"extra"`},
		{"gogc", []string{"-gogc", "sometimes"}, "-gogc"},
		{"dir missing", []string{"-dir", filepath.Join(t.TempDir(), "missing")}, "-dir"},
		{"dir a file", []string{"-dir", file}, "not a directory"},
		{"dir and workers", []string{"-dir", t.TempDir(), "-workers", "2"}, "-workers"},
	} {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			code, stdout, stderr := runBin(t, bin, nil, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want one line naming %q", stderr, tc.want)
			}
		})
	}
	t.Run("child without -dir", func(t *testing.T) {
		code, stdout, stderr := runBin(t, bin, []string{childEnv + "=1"})
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d, stdout %q, stderr %q: want exit 2 and one line on stderr", code, stdout, stderr)
		}
	})
}

// runBin runs bin with args, env added to the environment, and returns its exit code and
// output.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v", bin, err)
	}
	return code, out.String(), errb.String()
}

// runOK runs bin with args and returns its stdout; it must exit 0 with nothing on stderr.
func runOK(t *testing.T, bin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runBin(t, bin, nil, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
	}
	return stdout
}

// figures is what a test reads of a report.
type figures struct {
	firstWall, firstCPU, secondWall float64 // medians, ms
	faults                          int
	body                            int
	perFault                        float64 // µs
}

var (
	firstRE  = regexp.MustCompile(`(?m)^first scrape \(new process\): +([0-9.]+) ms wall \([0-9.]+-[0-9.]+\), +([0-9.]+) CPU-ms \([0-9.]+-[0-9.]+\), +([0-9]+) minor faults \([0-9]+-[0-9]+\), +[0-9]+ GCs$`)
	secondRE = regexp.MustCompile(`(?m)^second scrape: +([0-9.]+) ms wall \([0-9.]+-[0-9.]+\), +[0-9.]+ CPU-ms .* minor faults .* GCs$`)
	bodyRE   = regexp.MustCompile(`(?m)^body: ([0-9]+) B( \([0-9]+-[0-9]+\))?, as sent$`)
	otherRE  = regexp.MustCompile(`(?m)^other processes used [0-9.]+ CPU-s during the runs' [0-9.]+ s \(a busy machine widens the ranges\)$`)
	faultRE  = regexp.MustCompile(`(?m)^page faults here: ([0-9.]+) µs each \(16 MiB of anonymous memory touched: [0-9]+ faults; median of 5\)$`)
)

// parseReport reads the figures of a report; every line must be there, the wall times,
// the body and the cost of a fault positive (the CPU time and faults only present: a
// scrape of a few series may take less than the clocks' resolution).
func parseReport(t *testing.T, out string) figures {
	t.Helper()
	var f figures
	m1, m2, mb, mf := firstRE.FindStringSubmatch(out), secondRE.FindStringSubmatch(out), bodyRE.FindStringSubmatch(out), faultRE.FindStringSubmatch(out)
	if m1 == nil || m2 == nil || mb == nil || mf == nil {
		t.Fatalf("report lacks a line (first %v, second %v, body %v, faults %v):\n%s", m1 != nil, m2 != nil, mb != nil, mf != nil, out)
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: %v\n%s", s, err, out)
		}
		return v
	}
	f.firstWall, f.firstCPU, f.faults = num(m1[1]), num(m1[2]), int(num(m1[3]))
	f.secondWall, f.body, f.perFault = num(m2[1]), int(num(mb[1])), num(mf[1])
	if f.firstWall <= 0 || f.secondWall <= 0 || f.body <= 0 || f.perFault <= 0 {
		t.Errorf("want positive wall times, body and fault cost, got %+v:\n%s", f, out)
	}
	if !otherRE.MatchString(out) {
		t.Errorf("report lacks the other processes' CPU:\n%s", out)
	}
	if !strings.HasPrefix(out, "coldscrape: ") || strings.Count(out, "\n") != 6 {
		t.Errorf("want 6 lines, the first naming what was measured:\n%s", out)
	}
	return f
}

// wantIn checks that out holds each of wants.
func wantIn(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
