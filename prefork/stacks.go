package prefork

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Why a worker hung, and why it died. A ready worker whose heartbeat stopped for
// Config.Timeout is sent SIGABRT, on which the Go runtime prints every goroutine's stack
// and exits with status 2, from its signal handler, so this works even when the worker's
// scheduler is wedged. If the worker has not exited stackWait later, it is killed
// (SIGKILL); a stopped worker is killed at once. Either way its exit reason is ExitTimeout.
//
// SIGABRT rather than SIGQUIT: workers catch SIGQUIT (a terminal's Ctrl-\ reaches every
// process of its group, and the master drives the shutdown), and a caught signal gets no
// dump. No terminal sends SIGABRT, and gunicorn sends the same signal to a timed-out worker.
//
// The runtime writes the dump to the worker's stderr, which stays the master's stderr,
// untouched, and to its crash output (runtime/debug.SetCrashOutput), which each worker sets
// to a pipe from the master (see protocol.go). readCrash reads that pipe and logs what
// arrives, tagged with the worker's slot, id and pid: the stacks the master asked for, and
// any panic or fatal error the worker died of.

const (
	// stackWait is how long a hung worker has to print its stacks and exit.
	stackWait = 2 * time.Second
	// crashLogMax bounds the crash output kept for the log; the rest is counted, not kept.
	crashLogMax = 256 << 10
	// crashReadersWait bounds how long Run waits, once every worker is reaped, for the
	// crash output still in the pipes.
	crashReadersWait = time.Second
)

// askStacks asks the hung worker w for its goroutine stacks, to be killed if it has not
// exited within stackWait. A stopped worker (SIGSTOP, a debugger) is killed at once: it
// could print its stacks only if continued, and then it would also accept, for the moment
// its dump takes, connections queued on its slot's socket, which its death would reset.
func (s *supervisor) askStacks(w *worker, now time.Time) {
	if st := procState(s.env, w.pid); st == 'T' || st == 't' {
		s.log.Warn("worker heartbeat timeout; it is stopped, so it cannot print its goroutine stacks; killing",
			append(w.attrs(), "timeout", s.cfg.Timeout, "state", string(st))...)
		s.kill(w, ExitTimeout)
		return
	}
	s.log.Warn("worker heartbeat timeout; asking for its goroutine stacks (SIGABRT)",
		append(w.attrs(), "timeout", s.cfg.Timeout, "kill_in", stackWait)...)
	if w.stopReason == "" {
		w.stopReason = ExitTimeout
	}
	w.state = StateStopping
	w.killDeadline = now.Add(stackWait)
	w.askedStacks.Store(true)
	s.signal(w, syscall.SIGABRT)
}

// procState returns the state letter of /proc/PID/stat ('R', 'S', 'T'...), or 0.
func procState(e *env, pid int) byte {
	b, err := e.readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// readCrash reads w's crash output until end-of-file (the worker is gone) and logs it.
// It runs on its own goroutine and touches only w's fixed fields and w.crash.
func (s *supervisor) readCrash(w *worker) {
	defer s.crashReaders.done(w.crash)
	var buf []byte
	total := 0
	chunk := make([]byte, 32<<10)
	for {
		n, err := w.crash.Read(chunk)
		total += n
		if keep := min(n, crashLogMax-len(buf)); keep > 0 {
			buf = append(buf, chunk[:keep]...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				s.log.Warn("reading worker crash output", append(w.attrs(), "err", err)...)
			}
			break
		}
	}
	if total == 0 {
		return
	}
	msg := "worker crash output"
	if w.askedStacks.Load() {
		msg = "worker goroutine stacks"
	}
	s.log.Error(msg, append(w.attrs(), "bytes", total, "truncated", total > len(buf), "output", string(buf))...)
}

// crashReaders tracks the readCrash goroutines and their pipes.
type crashReaders struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	files map[*os.File]bool // guarded by mu: the pipes still being read
}

func (c *crashReaders) add(f *os.File) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[*os.File]bool{}
	}
	c.files[f] = true
	c.wg.Add(1)
}

// done closes f and marks its reader finished.
func (c *crashReaders) done(f *os.File) {
	c.mu.Lock()
	delete(c.files, f)
	c.mu.Unlock()
	f.Close()
	c.wg.Done()
}

// waitCrashReaders waits, for at most crashReadersWait, until the crash output of the
// reaped workers is logged, then stops the readers still waiting (a worker's own child
// holding the pipe open).
func (s *supervisor) waitCrashReaders() {
	c := &s.crashReaders
	finished := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(finished)
	}()
	t := time.NewTimer(crashReadersWait)
	defer t.Stop()
	select {
	case <-finished:
		return
	case <-t.C:
	}
	c.mu.Lock()
	for f := range c.files {
		f.Close() // the reader sees os.ErrClosed and logs what it has
	}
	c.mu.Unlock()
	<-finished
}
