package mmapstore

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// Cell is the stable handle of one entry's value. A File hands out one Cell
// per key and the Cell stays valid, at the same address, for the life of the
// File: growth never moves it (the mapping is reserved once), and when Check
// recreates a deleted file it maps the new file at the same address.
//
// Add, Set, SetWithTimestamp and Load are safe for concurrent use, lock-free,
// and neither allocate nor make system calls: one atomic pointer load, then an
// atomic load/store or a compare-and-swap loop on the float64 bits in the
// shared mapping. Other processes (the master, Python's collector) see the
// value through their own mappings of the file.
//
// The zero Cell is usable: it discards writes and loads 0, so a caller that
// failed to get a Cell (full disk) can still hand out a harmless handle.
type Cell struct {
	p  atomic.Pointer[uint64] // value word; in the current layout the timestamp word follows
	ts bool                   // the entry has a timestamp word (current layout)

	// Guarded by the owning File's mu.
	off int // offset of the value in the file
}

// Add adds v to the value. Concurrent adds from any number of goroutines and
// processes are all counted (compare-and-swap, retried on contention).
func (c *Cell) Add(v float64) {
	p := c.p.Load()
	if p == nil {
		return
	}
	for {
		old := atomic.LoadUint64(p)
		if atomic.CompareAndSwapUint64(p, old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Set stores v.
func (c *Cell) Set(v float64) {
	if p := c.p.Load(); p != nil {
		atomic.StoreUint64(p, math.Float64bits(v))
	}
}

// SetWithTimestamp stores v and the time it was set, in unix seconds, for the
// mostrecent gauge modes. The two words are stored one after the other, as
// client_python does; a reader racing with two concurrent setters may pair one
// setter's value with the other's timestamp. In the legacy layout the
// timestamp is dropped.
func (c *Cell) SetWithTimestamp(v, unixSeconds float64) {
	p := c.p.Load()
	if p == nil {
		return
	}
	atomic.StoreUint64(p, math.Float64bits(v))
	if c.ts {
		atomic.StoreUint64(tsWord(p), math.Float64bits(unixSeconds))
	}
}

// Load returns the value.
func (c *Cell) Load() float64 {
	p := c.p.Load()
	if p == nil {
		return 0
	}
	return math.Float64frombits(atomic.LoadUint64(p))
}

// loadTimestamp returns the timestamp word (0 in the legacy layout).
func (c *Cell) loadTimestamp() float64 {
	p := c.p.Load()
	if p == nil || !c.ts {
		return 0
	}
	return math.Float64frombits(atomic.LoadUint64(tsWord(p)))
}

func tsWord(p *uint64) *uint64 { return (*uint64)(unsafe.Add(unsafe.Pointer(p), 8)) }

// word returns a pointer to the 8-byte word at data[off]. Entries keep values
// 8-byte aligned within the file and mappings are page aligned, so the word is
// aligned as the atomic instructions require.
func word(data []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&data[off])) }

// usedWord returns a pointer to the header's used field, stored and loaded
// atomically: the store publishes an appended entry, the load acquires it.
func usedWord(data []byte) *uint32 { return (*uint32)(unsafe.Pointer(&data[0])) }
