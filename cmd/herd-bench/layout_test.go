package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLayouts(t *testing.T) {
	got, err := parseLayouts("single, reuseport,shared,reuseport/1x2,shared/4,single/1x1")
	if err != nil {
		t.Fatal(err)
	}
	want := []layout{
		{Name: "herd single", Mode: "single"},
		{Name: "herd reuseport", Mode: "reuseport"},
		{Name: "herd shared", Mode: "shared"},
		{Name: "herd reuseport/1x2", Mode: "reuseport", Workers: 1, Procs: 2},
		{Name: "herd shared/4", Mode: "shared", Workers: 4},
		{Name: "herd single/1x1", Mode: "single", Workers: 1, Procs: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d layouts, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Mode != want[i].Mode || got[i].Workers != want[i].Workers || got[i].Procs != want[i].Procs {
			t.Errorf("layout %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if ls, err := parseLayouts(""); err != nil || len(ls) != 0 {
		t.Errorf("parseLayouts(\"\") = %v, %v; want none", ls, err)
	}
	for _, bad := range []string{"prefork", "reuseport/0", "reuseport/x", "reuseport/2x0", "single/2", "shared,shared", "reuseport/1y2"} {
		if _, err := parseLayouts(bad); err == nil {
			t.Errorf("parseLayouts(%q): no error", bad)
		}
	}
}

func TestHerdArgv(t *testing.T) {
	ls, _ := parseLayouts("single,reuseport,shared/3x2")
	tests := []struct {
		l     layout
		cores int
		argv  string
		env   []string
		shape string
	}{
		{ls[0], 2, "bin/hello -bind A -metrics-bind M -metrics-dir D -workers 0", nil, "1 × 2P"},
		{ls[1], 2, "bin/hello -bind A -metrics-bind M -metrics-dir D -workers 2 -listener-mode reuseport", []string{"GOMAXPROCS=1"}, "2 × 1P"},
		{ls[1], 1, "bin/hello -bind A -metrics-bind M -metrics-dir D -workers 1 -listener-mode reuseport", []string{"GOMAXPROCS=1"}, "1 × 1P"},
		{ls[2], 2, "bin/hello -bind A -metrics-bind M -metrics-dir D -workers 3 -listener-mode shared", []string{"GOMAXPROCS=2"}, "3 × 2P"},
	}
	for _, tt := range tests {
		argv, env := tt.l.argv("bin/hello", "A", "M", "D", tt.cores)
		if got := strings.Join(argv, " "); got != tt.argv {
			t.Errorf("%s on %d cores: argv %q, want %q", tt.l.Name, tt.cores, got, tt.argv)
		}
		if !slices.Equal(env, tt.env) {
			t.Errorf("%s on %d cores: env %q, want %q", tt.l.Name, tt.cores, env, tt.env)
		}
		if got := tt.l.shape(tt.cores); got != tt.shape {
			t.Errorf("%s on %d cores: shape %q, want %q", tt.l.Name, tt.cores, got, tt.shape)
		}
	}
}

func TestPeer(t *testing.T) {
	p, err := parsePeer("gunicorn = bench/python/run-gunicorn.sh {addr} {workers}")
	if err != nil {
		t.Fatal(err)
	}
	argv, env := p.argv("bin/hello", "127.0.0.1:8123", "M", "D", 2)
	if got := strings.Join(argv, " "); got != "bench/python/run-gunicorn.sh 127.0.0.1:8123 2" || env != nil {
		t.Errorf("argv %q env %q", got, env)
	}
	if in := p.resolve(2); in.workers != 2 || !in.usesWorker {
		t.Errorf("resolve = %+v, want 2 workers", in)
	}
	if got := p.shape(1); got != "1 worker" {
		t.Errorf("shape = %q", got)
	}
	q, err := parsePeer("net/http=bin/bench-nethttp -bind 127.0.0.1:{port}")
	if err != nil {
		t.Fatal(err)
	}
	argv, _ = q.argv("", "127.0.0.1:8123", "", "", 2)
	if got := strings.Join(argv, " "); got != "bin/bench-nethttp -bind 127.0.0.1:8123" {
		t.Errorf("argv %q", got)
	}
	if in := q.resolve(2); in.workers != 1 || q.shape(2) != "1 process" {
		t.Errorf("resolve = %+v, shape %q; want one process", in, q.shape(2))
	}
	for _, bad := range []string{"", "name", "=cmd {addr}", "name=", "name=cmd without address"} {
		if _, err := parsePeer(bad); err == nil {
			t.Errorf("parsePeer(%q): no error", bad)
		}
	}
}

func TestCPUList(t *testing.T) {
	tests := []struct {
		in, out string
		n       int
	}{
		{"0", "0", 1},
		{"1-3", "1-3", 3},
		{"3,0-1,1", "0-1,3", 3},
		{"0,2,4-5", "0,2,4-5", 4},
	}
	for _, tt := range tests {
		l, err := parseCPUList(tt.in)
		if err != nil || l.String() != tt.out || len(l) != tt.n {
			t.Errorf("parseCPUList(%q) = %v (%q), %v; want %q with %d CPUs", tt.in, l, l.String(), err, tt.out, tt.n)
		}
	}
	for _, bad := range []string{"", "a", "-1", "3-1", "1-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q): no error", bad)
		}
	}
	server, load, err := splitCPUs(cpuList{0, 1})
	if err != nil || server.String() != "1" || load.String() != "0" {
		t.Errorf("splitCPUs(0-1) = %v, %v, %v; want server 1, wrk 0", server, load, err)
	}
	server, load, _ = splitCPUs(cpuList{0, 1, 2, 3, 4})
	if server.String() != "2-4" || load.String() != "0-1" {
		t.Errorf("splitCPUs(0-4) = %v, %v; want server 2-4, wrk 0-1", server, load)
	}
	if _, _, err := splitCPUs(cpuList{0}); err == nil {
		t.Error("splitCPUs of one CPU: no error")
	}
}
