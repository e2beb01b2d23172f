package prefork

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Running out of file descriptors. The master shares its descriptor table with whatever
// else runs in its process (the server's admin listener and its connections, say), and
// starting a worker needs descriptors: two pipes kept open for the worker's life, and
// briefly the child's ends and the pipe syscall.ForkExec makes to report exec errors. A
// start that fails with EMFILE (the process's limit) or ENFILE (the system's) says nothing
// about the worker or its binary, so it is not a crash: the slot retries with its own
// backoff, never counted toward CrashLimit and never aborting a start-up, reload or scale-up;
// it is logged (at most once per fdLogEvery) and counted (Counters.FDExhausted).
//
// So that a neighbour filling the table cannot stop replacements, the supervisor holds a
// reserve of descriptors (opened on /dev/null) and releases it just before it creates a
// worker's pipes and forks, taking it back right after, and again whenever a reaped worker
// frees its own.

const (
	// fdReserveSize covers one start: three pipes (status, lifeline, crash output), the
	// fork's error pipe, and /dev/null for a closed standard descriptor, with some slack.
	fdReserveSize = 12
	// fdBackoffBase and fdBackoffMax bound the retry delay of a start that found no
	// descriptor: 50ms, 100ms, 200ms ... 2s.
	fdBackoffBase = 50 * time.Millisecond
	fdBackoffMax  = 2 * time.Second
	// fdLogEvery rate-limits the log line about missing descriptors.
	fdLogEvery = 10 * time.Second
)

// fdReserve is a set of spare descriptors held for worker starts.
type fdReserve struct {
	fds []int
}

// fill opens descriptors until the reserve is full or none is left.
func (r *fdReserve) fill() {
	for len(r.fds) < fdReserveSize {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		r.fds = append(r.fds, fd)
	}
}

// release closes every descriptor of the reserve, for the caller to use at once.
func (r *fdReserve) release() {
	closeFDs(r.fds)
	r.fds = r.fds[:0]
}

// noFDs reports whether err says that no file descriptor was left.
func noFDs(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// startDeferred schedules another try of a start of sl that found no descriptor.
func (s *supervisor) startDeferred(sl *slot, now time.Time, err error) {
	s.counters.FDExhausted++
	d := min(fdBackoffBase<<min(sl.fdRetries, 20), fdBackoffMax)
	sl.fdRetries++
	sl.respawnAt = now.Add(d)
	if now.Before(s.fdLogNext) {
		s.fdSuppressed++
		return
	}
	s.log.Warn("cannot start worker: out of file descriptors; retrying (not counted as a failure)",
		"worker", sl.index, "retry_in", d, "err", err, "suppressed", s.fdSuppressed,
		"fd_exhausted_total", s.counters.FDExhausted)
	s.fdLogNext, s.fdSuppressed = now.Add(fdLogEvery), 0
}
