package prefork

import (
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// FakeSignals delivers control signals to a master started by NewMasterForTest instead of
// the real signal package, so that tests never signal the test process itself.
type FakeSignals struct {
	mu      sync.Mutex
	c       chan<- os.Signal
	pending []os.Signal
}

// Send delivers sig (or keeps it until the master listens).
func (f *FakeSignals) Send(sig os.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c == nil {
		f.pending = append(f.pending, sig)
		return
	}
	f.c <- sig
}

func (f *FakeSignals) notify(c chan<- os.Signal, _ ...os.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c = c
	for _, s := range f.pending {
		c <- s
	}
	f.pending = nil
}

func (f *FakeSignals) stop(chan<- os.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c = nil
}

// NewMasterForTest is NewMaster with fake control signals.
func NewMasterForTest(cfg Config) (*Master, *FakeSignals, error) {
	e := newStdEnv()
	f := &FakeSignals{}
	e.notify, e.stopNotify = f.notify, f.stop
	m, err := newMaster(cfg, e)
	return m, f, err
}

var (
	MergeEnv = mergeEnv
)

// ForkCall is one worker start as a test's fork seam sees it (SetForkForTest).
type ForkCall struct {
	Slot int
	ID   string
	Env  []string // the worker's environment; the seam may change it
}

// SetForkForTest makes m start every worker through seam before the real fork: seam may
// change the worker's environment, block, or fail the start by returning an error (which
// the master then sees as the fork's error). Call it before Run.
func SetForkForTest(m *Master, seam func(*ForkCall) error) {
	fork := m.env.forkExec
	m.env.forkExec = func(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
		v, _ := lookupEnv(attr.Env, markerEnv)
		mk, err := decodeMarker(v)
		if err != nil {
			return 0, err
		}
		c := &ForkCall{Slot: mk.Slot, ID: mk.ID, Env: attr.Env}
		if err := seam(c); err != nil {
			return 0, err
		}
		a := *attr
		a.Env = c.Env
		return fork(path, argv, &a)
	}
}

// SetUpgradeTimeoutAtReadyForTest makes m, as the old master of a binary upgrade, meet its
// upgrade timeout at the very moment the new master reports ready: the timeout event
// reaches the supervisor just before the ready one. Call it before Run.
func SetUpgradeTimeoutAtReadyForTest(m *Master) {
	m.env.upgradeReady = func(timeout func()) { timeout() }
}

// SetTakeOverGateForTest makes m, as the new master of a binary upgrade, take over only once
// the file gate exists (waiting up to a minute, its supervisor held meanwhile). Call it
// before Run.
func SetTakeOverGateForTest(m *Master, gate string) {
	m.env.beforeTakeOver = func() {
		testutil.Until(time.Minute, func() bool {
			_, err := os.Stat(gate)
			return err == nil
		})
	}
}
