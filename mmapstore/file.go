package mmapstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Options configures Open. The zero value works.
type Options struct {
	// Layout of new files; zero: Current. An existing file keeps the layout
	// it was written in, whatever this says, so that appends stay readable.
	Layout Layout
	// MaxSize is the address space reserved for the file's mapping, and so
	// the most the file can grow to; zero: 1 GiB, at most 2 GiB - 1 page
	// (the header counts bytes in an int32). Only the part the file has
	// reserved on disk uses memory.
	MaxSize int64
	// Mode of new files; zero: 0600.
	Mode os.FileMode

	// noLock skips the exclusive lock, for tests in which other processes add to the
	// cells of a file that its writer holds.
	noLock bool
	// fallocate replaces fallocate(2) for tests (nil: the system call), so that the
	// fallback for filesystems without it runs everywhere.
	fallocate func(fd int, mode uint32, off, n int64) error
	// flock replaces flock(2) for tests (nil: the system call).
	flock func(fd int, how int) error
}

// Errors of the writer side.
var (
	ErrClosed   = errors.New("mmapstore: file closed")
	ErrFileFull = errors.New("mmapstore: file reached its MaxSize")
	// ErrLocked is returned by Open for a path that another File, in this process or in
	// another one, holds open: two writers of one file would corrupt each other's entries.
	// In herd it means two Registries were given one directory and id, or a worker id was
	// reused while the process that had it still runs.
	ErrLocked = errors.New("mmapstore: file is held by another writer")
)

// File is one writer's metric file: one per metric type (and gauge mode) per
// worker. It is safe for concurrent use. A File holds an exclusive flock(2) on
// its file for as long as it is open, so that a second File on the same path,
// in this process or another, fails (ErrLocked) instead of appending over the
// first one's entries. The kernel drops the lock when the File is closed or its
// process dies, however it dies. Readers (Reader, ReadFile, client_python) take
// no lock and are not affected by it.
type File struct {
	path    string
	mode    os.FileMode
	mapLen  int // length of every mapping this File makes
	created bool
	noLock  bool
	// fallocate is fallocate(2), or the test seam of Options.
	fallocate func(fd int, mode uint32, off, n int64) error
	// flock is flock(2), or the test seam of Options.
	flock func(fd int, how int) error

	mu         sync.Mutex // guards the fields below
	layout     Layout
	fd         *os.File
	data       []byte // MAP_SHARED mapping, mapLen bytes, of which size are backed by the file
	size       int    // bytes reserved in the file
	used       int    // bytes in use; mirrors the header
	dev, ino   uint64 // identity of the file at path, to notice deletion or replacement
	index      map[string]*Cell
	cells      []*Cell // in file order
	movedAside string
	closed     bool
}

func (f *File) addCell(key string, off int) *Cell {
	c := &Cell{ts: f.layout == Current, off: off}
	c.p.Store(word(f.data, off))
	f.index[key] = c
	f.cells = append(f.cells, c)
	return c
}

// Path returns the path the file was opened at.
func (f *File) Path() string { return f.path }

// Layout returns the layout the file is written in.
func (f *File) Layout() Layout {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.layout
}

// Created reports whether Open created a new file rather than continuing an
// existing one.
func (f *File) Created() bool { return f.created }

// MovedAside returns where Open moved a corrupt file it found at the path,
// or "" if it did not.
func (f *File) MovedAside() string { return f.movedAside }

// Len returns the number of entries.
func (f *File) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cells)
}

// Cell returns the cell of key, appending a zero-valued entry if the file has
// none. key must be a valid key (see EncodeKey): readers skip a file with a
// malformed key, so Cell refuses one. The entry's bytes are written before the
// header's used field, so a reader never sees a partial entry. When the file
// is full it grows (doubling) by reserving space with fallocate inside the
// mapping made at Open; if the filesystem is full, Cell returns the error and
// the file stays as it was. Cells never move. Safe for concurrent use; it
// takes the File's lock, so callers cache the result.
func (f *File) Cell(key []byte) (*Cell, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if c := f.index[string(key)]; c != nil {
		return c, nil
	}
	if _, err := DecodeKey(key); err != nil {
		return nil, err
	}
	n := entrySize(len(key), f.layout)
	if f.used+n > f.size {
		if err := f.growLocked(f.used + n); err != nil {
			return nil, fmt.Errorf("mmapstore: add entry to %s: %w", f.path, err)
		}
	}
	entry := appendEntry(f.data[f.used:f.used:f.size], key, f.layout)
	valueOff := f.used + len(entry) - f.layout.valueBytes()
	c := f.addCell(string(key), valueOff)
	f.used += len(entry)
	atomic.StoreUint32(usedWord(f.data), uint32(f.used))
	return c, nil
}

// growLocked reserves file space for at least need bytes: double the size,
// or, if the filesystem cannot give that much, just what is needed.
func (f *File) growLocked(need int) error {
	if need > len(f.data) {
		return fmt.Errorf("%w (%d bytes)", ErrFileFull, len(f.data))
	}
	want := f.size
	for want < need {
		want *= 2
	}
	want = min(want, len(f.data))
	err := f.reserve(f.fd, int64(f.size), int64(want-f.size))
	if err != nil && want > roundPage(need) {
		want = min(roundPage(need), len(f.data))
		err = f.reserve(f.fd, int64(f.size), int64(want-f.size))
	}
	if err != nil {
		return fmt.Errorf("grow to %d bytes: %w", want, err)
	}
	f.size = want
	return nil
}

// Close unmaps and closes the file, which releases its lock; the file itself
// stays on disk for readers (and for a successor to continue).
// The File's Cells stay usable but are detached: they keep their last values
// in process memory and their writes no longer reach any file. Close must not
// race with a Cell method that is between loading the Cell's pointer and
// writing through it (the memory it writes to is unmapped): stop the writers
// first. Calling Close again does nothing.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	for _, c := range f.cells {
		var w [2]uint64
		p := c.p.Load()
		w[0] = atomic.LoadUint64(p)
		if c.ts {
			w[1] = atomic.LoadUint64(tsWord(p))
		}
		c.p.Store(&w[0])
	}
	var errs []error
	if err := unix.Munmap(f.data); err != nil {
		errs = append(errs, err)
	}
	f.data = nil
	if err := f.fd.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mmapstore: close %s: %w", f.path, err)
	}
	return nil
}
