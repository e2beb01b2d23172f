package prefork

import (
	"bytes"
	"strconv"
	"strings"
)

// The heartbeat: every Timeout/4 (at most every second) a ready worker sends "hb" with its
// request count and, to a master that reads it (marker's hb_ext), its requests in flight.
// At each heartbeat the master reads the worker's resident memory and CPU time from /proc.

// SetInFlightCounter sets the function the heartbeat calls to report the number of requests
// being handled right now (shown by Master.Workers as InFlight). f must be safe to call from
// another goroutine and should be as cheap as loading an atomic; like the request counter
// (SetRequestCounter), if it blocks, no heartbeat is sent. A negative count is sent as 0.
func (w *WorkerProcess) SetInFlightCounter(f func() int) {
	if f == nil {
		w.inFlight.Store(nil)
		return
	}
	w.inFlight.Store(&f)
}

// beatLine returns the heartbeat line to send now (without its newline).
func (w *WorkerProcess) beatLine() string {
	var n uint64
	if f := w.counter.Load(); f != nil {
		n = (*f)()
	}
	line := msgBeat + " " + strconv.FormatUint(n, 10)
	if !w.beatExt {
		return line // an older master drops a line with more fields
	}
	var inFlight int
	if f := w.inFlight.Load(); f != nil {
		inFlight = max((*f)(), 0)
	}
	return line + " " + strconv.Itoa(inFlight)
}

// parseBeat parses the fields of a heartbeat line after "hb ": the request count, then the
// requests in flight if present; later fields (from a newer worker) are ignored.
func parseBeat(arg string) (statusMsg, bool) {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return statusMsg{}, false
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return statusMsg{}, false
	}
	m := statusMsg{kind: msgBeat, requests: n}
	if len(f) > 1 {
		in, err := strconv.Atoi(f[1])
		if err != nil || in < 0 {
			return statusMsg{}, false
		}
		m.inFlight = in
	}
	return m, true
}

// heartbeat records a heartbeat of w: its counts, and its resident memory (which may mark
// it for replacement, see checkRSS) and CPU time as the kernel reports them now.
func (s *supervisor) heartbeat(w *worker, m statusMsg) {
	w.lastBeat = s.env.now()
	w.requests, w.inFlight = m.requests, m.inFlight
	s.checkRSS(w)
	if cpu, ok := s.readCPU(w.pid); ok {
		w.cpu = cpu
	}
}

// clkTck is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on every Linux
// architecture (the kernel converts to it for user space).
const clkTck = 100

// readCPU returns the CPU time, user and system, that process pid has used, in seconds,
// from /proc/PID/stat (utime and stime, its 14th and 15th fields).
func (s *supervisor) readCPU(pid int) (float64, bool) {
	b, err := s.env.readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / clkTck, true
}
