package prefork

import (
	"os"
	"sync"
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
	MergeEnv       = mergeEnv
	ParseByteCount = parseByteCount
)
