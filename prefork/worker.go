package prefork

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// WorkerProcess is the worker side of the process model: what a process started by a Master
// gets from Worker. Its methods are safe for concurrent use.
type WorkerProcess struct {
	// Slot is the stable worker index, 0..N-1 (never the pid).
	Slot int
	// ID is "<slot>a" or "<slot>b": the two lanes of a slot, so that a worker and the
	// successor that overlaps it during a planned replacement never share an ID.
	ID string
	// Listeners are the inherited listening sockets, in the order of the master's Addrs.
	// The worker owns them: closing one stops this worker accepting, nothing more (the
	// master keeps its own copy, so queued connections wait for the slot's next worker).
	Listeners []net.Listener
	// Data is the master's Config.WorkerData.
	Data string

	maxRequests int
	heartbeat   time.Duration
	orphan      time.Duration

	status  *os.File   // fdStatus
	writeMu sync.Mutex // serialises lines on status

	stop      chan struct{}
	stopOnce  sync.Once
	orphaned  chan struct{}
	readyOnce sync.Once
	readyErr  error
	retired   atomic.Bool
	counter   atomic.Pointer[func() uint64]
	inFlight  atomic.Pointer[func() int] // see heartbeat.go
	beatExt   bool                       // the master reads heartbeat fields after the count
}

// thisWorker caches Worker's answer: the process's role is process-wide by nature (descriptors
// 3 and up, signal handlers), and the marker is gone from the environment after the first
// call. This is the package's only package-level variable.
var thisWorker struct {
	once sync.Once
	w    *WorkerProcess
}

// Worker reports whether this process is a worker started by a Master, and if so returns its
// WorkerProcess. Call it first thing in main, before starting goroutines or subprocesses.
//
// The first call reads the HERD_WORKER environment variable (the one environment read of
// this package on the worker side) and unsets it, so that the application's own
// subprocesses are not mistaken for workers; later calls return the same answer. It then
// takes over descriptors 3 and up, catches SIGTERM (which closes Stop), and swallows SIGINT
// and SIGQUIT: a terminal's Ctrl-C or Ctrl-\ reaches every process of its group, and the
// master drives the shutdown. (They are caught, not ignored, so that the application's
// own subprocesses keep the default dispositions.)
//
// If the marker is present but the process cannot be set up as a worker (a marker from a
// different herd version, missing descriptors, or a master that died before the worker got
// here), Worker prints one line to stderr and exits with status 3: the master counts that as
// a boot failure.
func Worker() (*WorkerProcess, bool) {
	thisWorker.once.Do(func() {
		v, ok := os.LookupEnv(markerEnv)
		if !ok {
			return
		}
		os.Unsetenv(markerEnv)
		w, err := newWorkerProcess(v, os.Getppid())
		if err != nil {
			fmt.Fprintf(os.Stderr, "prefork: worker: %v\n", err)
			os.Exit(3)
		}
		thisWorker.w = w
	})
	return thisWorker.w, thisWorker.w != nil
}

func newWorkerProcess(markerValue string, ppid int) (*WorkerProcess, error) {
	mk, err := decodeMarker(markerValue)
	if err != nil {
		return nil, err
	}
	if ppid != mk.Master {
		return nil, fmt.Errorf("master (pid %d) is gone", mk.Master)
	}
	status, err := inheritedPipe(fdStatus, "prefork-status")
	if err != nil {
		return nil, err
	}
	lifeline, err := inheritedPipe(fdLifeline, "prefork-lifeline")
	if err != nil {
		return nil, err
	}
	w := &WorkerProcess{
		Slot:        mk.Slot,
		ID:          mk.ID,
		Data:        mk.Data,
		maxRequests: mk.MaxRequests,
		heartbeat:   mk.heartbeat(),
		orphan:      mk.orphan(),
		beatExt:     mk.BeatExt,
		status:      status,
		stop:        make(chan struct{}),
		orphaned:    make(chan struct{}),
	}
	if mk.CrashFD > 0 {
		crash, err := inheritedPipe(mk.CrashFD, "prefork-crash")
		if err != nil {
			return nil, err
		}
		// The runtime keeps its own (close-on-exec) duplicate.
		err = debug.SetCrashOutput(crash, debug.CrashOptions{})
		crash.Close()
		if err != nil {
			return nil, fmt.Errorf("crash output (fd %d): %v", mk.CrashFD, err)
		}
	}
	for i := range mk.Listeners {
		fd := fdFirstListen + i
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "prefork-listener-"+strconv.Itoa(i))
		l, err := net.FileListener(f) // dups fd and makes it non-blocking
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("listener %d (fd %d): %v", i, fd, err)
		}
		w.Listeners = append(w.Listeners, l)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGTERM {
				w.requestStop()
			}
		}
	}()
	go w.watchLifeline(lifeline)
	return w, nil
}

// inheritedPipe wraps an inherited pipe descriptor in a pollable *os.File.
func inheritedPipe(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s (fd %d): %v", name, fd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("%s (fd %d) is not a pipe", name, fd)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("%s (fd %d): %v", name, fd, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// watchLifeline waits for the end-of-file that means the master is gone, then stops the
// worker and exits the process after the orphan timeout if it is still running.
func (w *WorkerProcess) watchLifeline(f *os.File) {
	io.Copy(io.Discard, f) // the master never writes: this returns at end-of-file
	close(w.orphaned)
	w.requestStop()
	time.AfterFunc(w.orphan, func() {
		fmt.Fprintf(os.Stderr, "prefork: worker %d (id %s, pid %d): master gone, exiting\n", w.Slot, w.ID, os.Getpid())
		os.Exit(1)
	})
}

func (w *WorkerProcess) requestStop() {
	w.stopOnce.Do(func() { close(w.stop) })
}

// Stop returns a channel that is closed when the worker should stop: the master sent
// SIGTERM (graceful stop, reload, scale-down, or its own replacement after Retire), or the
// master is gone. The worker should then stop accepting, drain, and exit with status 0; the
// master kills it after its graceful timeout. When the master is gone, the worker exits by
// itself after the orphan timeout (Config.OrphanTimeout), drained or not.
func (w *WorkerProcess) Stop() <-chan struct{} { return w.stop }

// MasterGone returns a channel that is closed when the master is gone (the worker's lifeline
// reached end-of-file). Stop is closed too by then.
func (w *WorkerProcess) MasterGone() <-chan struct{} { return w.orphaned }

// MaxRequests returns this worker's request limit, jitter included (Config.MaxRequests,
// MaxRequestsJitter), or 0 for none. When it is reached, the worker should call Retire and
// keep serving until Stop is closed.
func (w *WorkerProcess) MaxRequests() int { return w.maxRequests }

// Ready tells the master that this worker serves. Call it once the listeners are being
// served; the master counts a worker that does not call it within its boot timeout as a
// failed boot. Ready also starts the heartbeat (every Timeout/4, at most every second).
// Later calls return the first call's result.
func (w *WorkerProcess) Ready() error {
	w.readyOnce.Do(func() {
		w.readyErr = w.send(msgReady)
		if w.readyErr == nil {
			go w.beat()
		}
	})
	return w.readyErr
}

// SetRequestCounter sets the function the heartbeat calls to report the number of requests
// served so far (shown by Master.Workers). f must be safe to call from another goroutine.
// The heartbeat waits for f: if f blocks, no heartbeat is sent, and the master kills the
// worker after its Timeout, so a counter that takes a lock the application needs doubles
// as a liveness check.
func (w *WorkerProcess) SetRequestCounter(f func() uint64) {
	if f == nil {
		w.counter.Store(nil)
		return
	}
	w.counter.Store(&f)
}

// Retire asks the master for a planned replacement, typically because MaxRequests was
// reached: the master starts a successor for this slot, waits until it is ready, then stops
// this worker (Stop is closed). Keep serving until then. Only the first call sends anything.
func (w *WorkerProcess) Retire() error {
	if w.retired.Swap(true) {
		return nil
	}
	return w.send(msgRetire)
}

func (w *WorkerProcess) beat() {
	t := time.NewTicker(w.heartbeat)
	defer t.Stop()
	for {
		if err := w.send(w.beatLine()); err != nil {
			return // the master is gone; the lifeline handles that
		}
		select {
		case <-t.C:
		case <-w.orphaned:
			return
		}
	}
}

// send writes one status line. Lines are shorter than PIPE_BUF, so each write is atomic.
func (w *WorkerProcess) send(line string) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.status.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.status.WriteString(line + "\n"); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("prefork: status pipe: master not reading")
		}
		return fmt.Errorf("prefork: status pipe: %w", err)
	}
	return nil
}

// readStatus reads a worker's status lines until end-of-file, calling f for each valid one.
func readStatus(r io.Reader, f func(statusMsg)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m, ok := parseStatus(sc.Text()); ok {
			f(m)
		}
	}
}
