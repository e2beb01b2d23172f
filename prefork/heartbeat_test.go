package prefork

import (
	"os"
	"testing"
)

func TestParseHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		line     string
		ok       bool
		requests uint64
		inFlight int
	}{
		{"hb 7", true, 7, 0},          // an older worker: no in-flight count
		{"hb 7 3", true, 7, 3},        // requests and in flight
		{"hb 7 3 99 x=1", true, 7, 3}, // a newer worker's extra fields are ignored
		{"hb 18446744073709551615 0", true, 1<<64 - 1, 0},
		{"hb", false, 0, 0},
		{"hb x", false, 0, 0},
		{"hb 7 -1", false, 0, 0},
		{"hb 7 x", false, 0, 0},
		{"hb -7 1", false, 0, 0},
	} {
		m, ok := parseStatus(tc.line)
		if ok != tc.ok || ok && (m.kind != msgBeat || m.requests != tc.requests || m.inFlight != tc.inFlight) {
			t.Errorf("parseStatus(%q) = %+v, %v; want requests %d, in flight %d, %v", tc.line, m, ok, tc.requests, tc.inFlight, tc.ok)
		}
	}
}

func TestBeatLine(t *testing.T) {
	w := &WorkerProcess{}
	if got := w.beatLine(); got != "hb 0" {
		t.Errorf("without counters or hb_ext: %q", got)
	}
	w.SetRequestCounter(func() uint64 { return 42 })
	w.SetInFlightCounter(func() int { return 3 })
	if got := w.beatLine(); got != "hb 42" {
		t.Errorf("to a master without hb_ext: %q, want the request count alone", got)
	}
	w.beatExt = true
	if got := w.beatLine(); got != "hb 42 3" {
		t.Errorf("to a master with hb_ext: %q", got)
	}
	w.SetInFlightCounter(func() int { return -2 })
	if got := w.beatLine(); got != "hb 42 0" {
		t.Errorf("a negative in-flight count: %q", got)
	}
	w.SetInFlightCounter(nil)
	if got := w.beatLine(); got != "hb 42 0" {
		t.Errorf("no in-flight counter: %q", got)
	}
}

func TestReadCPU(t *testing.T) {
	stat := map[string]string{
		// The command name may hold spaces and parentheses.
		"/proc/10/stat": "10 (a) (b c) R 1 10 10 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 4 0 9000 1000000 500",
		"/proc/11/stat": "11 (short) R 1",
	}
	e := newStdEnv()
	e.readFile = func(name string) ([]byte, error) {
		if s, ok := stat[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	s := &supervisor{env: e}
	if cpu, ok := s.readCPU(10); !ok || cpu != 3.75 {
		t.Errorf("readCPU(10) = %v, %v; want 3.75 s", cpu, ok)
	}
	for _, pid := range []int{11, 12} {
		if cpu, ok := s.readCPU(pid); ok {
			t.Errorf("readCPU(%d) = %v, true; want not known", pid, cpu)
		}
	}
}
