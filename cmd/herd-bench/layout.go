package main

import (
	"fmt"
	"strconv"
	"strings"
)

// layout is one way of serving the benchmarked path: the herd app in one
// of its process layouts, or a peer program.
type layout struct {
	Name string // shown in every table: "herd reuseport", "net/http"
	Peer bool   // a peer command rather than the herd app

	// herd app
	Mode    string // "single", "reuseport" or "shared"
	Workers int    // worker processes; 0: as many as the server's CPUs (1 for single)
	Procs   int    // GOMAXPROCS of each serving process; 0: 1 per worker, all CPUs for single

	// peer
	Command []string // argv; {addr}, {port} and {workers} are replaced
}

// parseLayouts reads the -layouts flag: a comma-separated list of
// MODE[/WORKERS[xGOMAXPROCS]] where MODE is single, reuseport or shared.
// "reuseport" is one worker per server CPU with GOMAXPROCS 1;
// "reuseport/1x2" is one worker with GOMAXPROCS 2; "single" is -workers 0
// with every server CPU.
func parseLayouts(s string) ([]layout, error) {
	var out []layout
	seen := map[string]bool{}
	for spec := range strings.SplitSeq(s, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		l, err := parseLayout(spec)
		if err != nil {
			return nil, err
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("-layouts: %q given twice", spec)
		}
		seen[l.Name] = true
		out = append(out, l)
	}
	return out, nil
}

func parseLayout(spec string) (layout, error) {
	mode, split, hasSplit := strings.Cut(spec, "/")
	switch mode {
	case "single", "reuseport", "shared":
	default:
		return layout{}, fmt.Errorf("-layouts: %q: mode must be single, reuseport or shared", spec)
	}
	l := layout{Name: "herd " + spec, Mode: mode}
	if !hasSplit {
		return l, nil
	}
	w, p, hasProcs := strings.Cut(split, "x")
	var err error
	if l.Workers, err = strconv.Atoi(w); err != nil || l.Workers < 1 || l.Workers > 256 {
		return layout{}, fmt.Errorf("-layouts: %q: workers must be 1..256", spec)
	}
	if hasProcs {
		if l.Procs, err = strconv.Atoi(p); err != nil || l.Procs < 1 || l.Procs > 1024 {
			return layout{}, fmt.Errorf("-layouts: %q: GOMAXPROCS must be 1..1024", spec)
		}
	}
	if mode == "single" && l.Workers != 1 {
		return layout{}, fmt.Errorf("-layouts: %q: single is one process (single/1xP)", spec)
	}
	return l, nil
}

// parsePeer reads one -peer flag: NAME=COMMAND [ARGS...], split on spaces
// (no shell quoting). The command must serve the benchmarked path on {addr}
// and answer GET /healthz with 200 (uncounted); with {workers} in it,
// herd-bench waits until /healthz has answered from that many distinct
// bodies (the worker's pid), so every worker serves before load starts.
func parsePeer(s string) (layout, error) {
	name, cmd, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	argv := strings.Fields(cmd)
	if !ok || name == "" || len(argv) == 0 {
		return layout{}, fmt.Errorf("-peer %q: want NAME=COMMAND [ARGS...]", s)
	}
	if !strings.Contains(cmd, "{addr}") && !strings.Contains(cmd, "{port}") {
		return layout{}, fmt.Errorf("-peer %q: the command must take {addr} or {port}", s)
	}
	return layout{Name: name, Peer: true, Command: argv}, nil
}

// instance is a layout resolved for a number of server CPUs.
type instance struct {
	workers    int // serving processes herd-bench waits for
	gomaxprocs int // GOMAXPROCS to set; 0: leave to the Go runtime
	usesWorker bool
}

func (l layout) resolve(serverCPUs int) instance {
	if l.Peer {
		uses := false
		for _, a := range l.Command {
			uses = uses || strings.Contains(a, "{workers}")
		}
		if !uses {
			return instance{workers: 1}
		}
		return instance{workers: serverCPUs, usesWorker: true}
	}
	if l.Mode == "single" {
		return instance{workers: 1, gomaxprocs: l.Procs}
	}
	w, p := l.Workers, l.Procs
	if w == 0 {
		w = serverCPUs
	}
	if p == 0 {
		p = 1
	}
	return instance{workers: w, gomaxprocs: p}
}

// shape describes the serving processes for the tables: "2 × 1P" is two
// processes with GOMAXPROCS 1; a peer shows its worker count.
func (l layout) shape(serverCPUs int) string {
	in := l.resolve(serverCPUs)
	if l.Peer {
		switch {
		case in.usesWorker && in.workers == 1:
			return "1 worker"
		case in.usesWorker:
			return fmt.Sprintf("%d workers", in.workers)
		}
		return "1 process"
	}
	p := in.gomaxprocs
	if p == 0 {
		p = serverCPUs
	}
	return fmt.Sprintf("%d × %dP", in.workers, p)
}

// argv returns the command line and extra environment that start the
// layout on addr (host:port), its admin listener on admin (herd only), with
// metric files under dir (herd only).
func (l layout) argv(app, addr, admin, dir string, serverCPUs int) (argv, env []string) {
	in := l.resolve(serverCPUs)
	if l.Peer {
		_, port, _ := strings.Cut(addr, ":")
		r := strings.NewReplacer("{addr}", addr, "{port}", port, "{workers}", strconv.Itoa(in.workers))
		for _, a := range l.Command {
			argv = append(argv, r.Replace(a))
		}
		return argv, nil
	}
	workers := in.workers
	if l.Mode == "single" {
		workers = 0
	}
	argv = []string{app, "-bind", addr, "-metrics-bind", admin, "-metrics-dir", dir, "-workers", strconv.Itoa(workers)}
	if l.Mode != "single" {
		argv = append(argv, "-listener-mode", l.Mode)
	}
	if in.gomaxprocs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(in.gomaxprocs))
	}
	return argv, env
}
