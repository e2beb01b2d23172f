package prefork

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// env is every operating-system call of the master that a test may want to replace. Tests
// build one with newStdEnv and swap single fields; nothing here is a package variable.
type env struct {
	environ    func() []string
	args       func() []string
	executable func() (string, error)
	getpid     func() int
	now        func() time.Time
	readFile   func(name string) ([]byte, error)

	// notify and stopNotify deliver the control signals (TERM, INT, QUIT, HUP, TTIN, TTOU,
	// USR1). SIGCHLD always comes from the real signal package.
	notify     func(c chan<- os.Signal, sig ...os.Signal)
	stopNotify func(c chan<- os.Signal)

	forkExec func(path string, argv []string, attr *syscall.ProcAttr) (pid int, err error)
	kill     func(pid int, sig syscall.Signal) error
	wait4    func(pid int, ws *unix.WaitStatus, options int) (int, error)

	// upgradeReady, if set, runs in the old master of a binary upgrade when the new
	// master's "ready" arrives, before the supervisor hears of it; timeout posts the
	// upgrade's timeout event then (a test's way to make the two meet).
	upgradeReady func(timeout func())
	// beforeTakeOver, if set, runs in a new master when the old master's "ack" reaches the
	// supervisor, before it takes over (a test's way to hold the take-over back).
	beforeTakeOver func()
}

func newStdEnv() *env {
	return &env{
		environ:    os.Environ,
		args:       func() []string { return os.Args },
		executable: os.Executable,
		getpid:     os.Getpid,
		now:        time.Now,
		readFile:   os.ReadFile,
		notify:     signal.Notify,
		stopNotify: signal.Stop,
		forkExec:   syscall.ForkExec,
		kill:       unix.Kill,
		wait4: func(pid int, ws *unix.WaitStatus, options int) (int, error) {
			return unix.Wait4(pid, ws, options, nil)
		},
	}
}
