package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-layouts", "reuseport", "-peer", "net/http=bin/x -bind {addr}", "-baseline", "net/http", "-rounds", "2",
		"-keep", "-split", "net/http, herd reuseport"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.layouts) != 2 || cfg.layouts[0].Name != "herd reuseport" || cfg.layouts[1].Name != "net/http" || cfg.rounds != 2 ||
		cfg.duration != 2*time.Second || cfg.warmup != time.Second || cfg.connections != 64 || !cfg.keep ||
		!slices.Equal(cfg.split, []string{"net/http", "herd reuseport"}) {
		t.Errorf("config %+v", cfg)
	}
	bad := [][]string{
		{"-layouts", ""},
		{"-baseline", "nope"},
		{"-duration", "1500ms"},
		{"-duration", "0s"},
		{"-warmup", "500ms"},
		{"-rounds", "0"},
		{"-connections", "0"},
		{"-threads", "-1"},
		{"-retries", "-1"},
		{"-quiet-wait", "-1s"},
		{"-path", "hello"},
		{"-pin", "sometimes"},
		{"-peer", "x=y"},
		{"-peer", "herd single=bin/x {addr}"},
		{"-split", "herd single"},
		{"-split", "herd single,nope"},
		{"stray"},
	}
	for _, args := range bad {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}

func TestScenarios(t *testing.T) {
	all, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{pin: "off"}
	scs, err := cfg.scenarios()
	if err != nil || len(scs) != 1 || scs[0].pinned() || scs[0].Cores != len(all) || scs[0].Threads != len(all) {
		t.Errorf("-pin off: %+v, %v", scs, err)
	}
	if len(all) < 2 {
		return
	}
	cfg = config{pin: "both", threads: 3}
	scs, err = cfg.scenarios()
	if err != nil || len(scs) != 2 || !scs[1].pinned() || scs[1].Threads != 3 || scs[1].Cores != len(all)-len(all)/2 {
		t.Errorf("-pin both: %+v, %v", scs, err)
	}
	for _, bad := range []config{
		{pin: "on", serverCPUs: "0", wrkCPUs: "0"},
		{pin: "on", serverCPUs: "4096"},
		{pin: "on", wrkCPUs: "4096"},
		{pin: "on", serverCPUs: "x"},
	} {
		if _, err := bad.scenarios(); err == nil {
			t.Errorf("scenarios(%+v): no error", bad)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-rounds", "3", "-peer", "net/http=bin/x -bind {addr}", "-path", "/it's"})
	want := `herd-bench -rounds 3 -peer 'net/http=bin/x -bind {addr}' -path '/it'\''s'`
	if got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

func TestMachine(t *testing.T) {
	if got := cpuModel([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := memTotalGiB([]byte("MemTotal:       24683520 kB\n")); got < 23.5 || got > 23.6 {
		t.Errorf("memTotalGiB = %v", got)
	}
	if got := osRelease([]byte("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")); got != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("osRelease = %q", got)
	}
	if got := wrkVersion([]byte("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer\nUsage: ...")); got != "debian/4.1.0-3+b2" {
		t.Errorf("wrkVersion = %q", got)
	}
}

// TestSmoke runs the whole tool for one second of wrk against
// examples/hello with two workers, and checks that herd's own counts agree
// with wrk's. It needs wrk (the Debian package; make test installs it) and
// fails without it.
func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatalf("wrk is required (apt-get install wrk; make deps installs it): %v", err)
	}
	dir := t.TempDir()
	hello := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", hello, "github.com/herdhttp/herd/examples/hello")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/hello: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "results")
	const conns = 8
	args := []string{"-app", hello, "-layouts", "reuseport/2", "-pin", "off", "-rounds", "1",
		"-duration", "1s", "-warmup", "0s", "-connections", "8", "-out", out}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("herd-bench exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, name := range []string{"results.md", "results.svg"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1", len(rep.Results))
	}
	r := rep.Results[0]
	if r.failed() || r.Wrk.Requests == 0 || r.Wrk.errors() != 0 || r.Wrk.P999 == 0 {
		t.Fatalf("round: %+v", r)
	}
	if r.ServerCPU <= 0 || r.LoadCPU <= 0 {
		t.Errorf("CPU server %v wrk %v: want both measured", r.ServerCPU, r.LoadCPU)
	}
	// Every response wrk saw was counted by herd's middleware before it was
	// sent; a request still in flight when wrk stopped may be counted too.
	if r.Counted < float64(r.Wrk.Requests) || r.Counted > float64(r.Wrk.Requests+conns) {
		t.Errorf("herd counted %v requests, wrk completed %d (with %d connections)", r.Counted, r.Wrk.Requests, conns)
	}
	if len(r.Workers) != 2 {
		t.Fatalf("worker requests %v, want 2 workers", r.Workers)
	}
	var sum uint64
	for _, n := range r.Workers {
		sum += n
	}
	if float64(sum) < r.Counted {
		t.Errorf("workers' requests %v (sum %d) below the merged count %v", r.Workers, sum, r.Counted)
	}
	if !strings.Contains(stdout.String(), "herd reuseport/2") {
		t.Errorf("terminal table lacks the layout:\n%s", stdout.String())
	}
}

// TestSmokeKeep runs two rounds with -keep: the herd app and the net/http
// peer are each started once and measured in both rounds, the second
// round in the reverse order, and the rounds are compared pairwise.
func TestSmokeKeep(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatalf("wrk is required (apt-get install wrk; make deps installs it): %v", err)
	}
	dir := t.TempDir()
	hello, nethttp := filepath.Join(dir, "hello"), filepath.Join(dir, "nethttp")
	for bin, pkg := range map[string]string{hello: "github.com/herdhttp/herd/examples/hello", nethttp: "github.com/herdhttp/herd/bench/nethttp"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(dir, "results")
	args := []string{"-app", hello, "-layouts", "reuseport/1", "-peer", "net/http=" + nethttp + " -bind {addr}",
		"-baseline", "net/http", "-split", "net/http,herd reuseport/1", "-keep", "-pin", "off", "-rounds", "2",
		"-duration", "1s", "-warmup", "1s", "-connections", "8", "-out", out}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("herd-bench exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var order []string
	pids := map[string]map[int]bool{}
	for _, r := range rep.Results {
		if r.failed() || r.Wrk.Requests == 0 || r.PID == 0 {
			t.Fatalf("round: %+v", r)
		}
		order = append(order, fmt.Sprintf("%d %s", r.Round, r.Layout))
		if pids[r.Layout] == nil {
			pids[r.Layout] = map[int]bool{}
		}
		pids[r.Layout][r.PID] = true
	}
	want := []string{"1 herd reuseport/1", "1 net/http", "2 net/http", "2 herd reuseport/1"}
	if !slices.Equal(order, want) {
		t.Errorf("runs in the order %q, want %q", order, want)
	}
	for layout, ps := range pids {
		if len(ps) != 1 {
			t.Errorf("%s ran as %d processes over the rounds, want 1 (-keep)", layout, len(ps))
		}
	}
	c, ok := findComparison(rep.Comparisons, "unpinned", "herd reuseport/1", "net/http")
	if !ok || c.Rounds != 2 || c.RPS.N != 2 || c.PerCPU.Median <= 0 {
		t.Errorf("comparison with net/http: %+v (found %v), want 2 rounds", c, ok)
	}
	if !strings.Contains(stdout.String(), "where the cost goes") || !strings.Contains(stdout.String(), "net/http → herd reuseport/1") {
		t.Errorf("terminal output lacks the cost split:\n%s", stdout.String())
	}
}
