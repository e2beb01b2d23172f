package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

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

// Open opens the metric file at path for writing.
//
// If the file does not exist, Open creates it atomically: it writes the header
// and reserves 64 KiB with fallocate under a temporary name in the same
// directory, then renames it into place, so no reader ever sees a half-made
// file. If it exists and is a valid metric file, Open continues it: its entries
// are indexed and their values kept (a restarted worker continues its
// predecessor's counts). A corrupt existing file is renamed aside (to a name
// not ending in ".db", see MovedAside) and a new one created; an empty one is
// replaced.
func Open(path string, opts Options) (*File, error) {
	f := &File{path: path, mode: opts.Mode, layout: opts.Layout, noLock: opts.noLock, fallocate: opts.fallocate}
	if f.fallocate == nil {
		f.fallocate = unix.Fallocate
	}
	if f.mode == 0 {
		f.mode = 0o600
	}
	if f.layout != Current && f.layout != Legacy {
		return nil, fmt.Errorf("mmapstore: open %s: unknown layout %d", path, int(f.layout))
	}
	f.mapLen = mapLen(opts.MaxSize)
	for range 3 { // a concurrent creator can win the rename race; then adopt its file
		// O_NOFOLLOW: a symbolic link planted at a worker's file name must
		// not make it write its counts into a file outside the directory.
		fd, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
		if errors.Is(err, unix.ELOOP) {
			err = &badFileError{fmt.Errorf("%w: a symbolic link", ErrCorrupt)}
		}
		switch {
		case err == nil:
			// Lock before looking: a file another writer holds must be neither
			// continued nor, if it looks corrupt, moved aside or replaced.
			if err := f.lock(fd); err != nil {
				fd.Close()
				return nil, fmt.Errorf("mmapstore: open %s: %w", path, err)
			}
			err = f.adopt(fd)
			if err == nil {
				return f, nil
			}
			fd.Close()
			fallthrough
		case isBadFile(err):
			var bad *badFileError
			if !errors.As(err, &bad) {
				return nil, fmt.Errorf("mmapstore: open %s: %w", path, err)
			}
			f.layout = opts.Layout // adopt may have detected the bad file's
			if !errors.Is(err, ErrEmptyFile) {
				aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
				if err := os.Rename(path, aside); err != nil {
					return nil, fmt.Errorf("mmapstore: open %s: move corrupt file aside: %w", path, err)
				}
				f.movedAside = aside
			}
			if err := f.create(true); err != nil {
				return nil, fmt.Errorf("mmapstore: open %s: %w", path, err)
			}
			return f, nil
		case errors.Is(err, fs.ErrNotExist):
			err = f.create(false)
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("mmapstore: create %s: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("mmapstore: open %s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("mmapstore: open %s: file keeps being replaced", path)
}

func isBadFile(err error) bool {
	var bad *badFileError
	return errors.As(err, &bad)
}

// lock takes the File's exclusive lock on fd without waiting: ErrLocked if
// another open file description of the file holds it.
func (f *File) lock(fd *os.File) error {
	if f.noLock {
		return nil
	}
	for {
		err := unix.Flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return ErrLocked
		}
		return fmt.Errorf("flock: %w", err)
	}
}

// lockedByOther reports whether the file now at f.path is held by another
// writer. It takes and drops the lock through a descriptor of its own.
func (f *File) lockedByOther() bool {
	if f.noLock {
		return false
	}
	fd, err := os.Open(f.path)
	if err != nil {
		return false
	}
	defer fd.Close() // drops the lock if we got it
	return f.lock(fd) == ErrLocked
}

func mapLen(maxSize int64) int {
	const gib = 1 << 30
	page := int64(os.Getpagesize())
	if maxSize <= 0 {
		maxSize = gib
	}
	maxSize = (maxSize + page - 1) / page * page
	if limit := int64(maxFileSize) / page * page; maxSize > limit {
		maxSize = limit
	}
	if maxSize < initialSize {
		maxSize = initialSize
	}
	return int(maxSize)
}

// badFileError marks an existing file that is not a usable metric file.
type badFileError struct{ err error }

func (e *badFileError) Error() string { return e.err.Error() }
func (e *badFileError) Unwrap() error { return e.err }

// adopt maps and indexes an existing file.
func (f *File) adopt(fd *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return err
	}
	if st.Size == 0 {
		return &badFileError{ErrEmptyFile}
	}
	if st.Size > maxFileSize {
		return &badFileError{fmt.Errorf("%w: %d bytes", ErrCorrupt, st.Size)}
	}
	size := int(st.Size)
	n := max(f.mapLen, roundPage(size))
	data, err := unix.Mmap(int(fd.Fd()), 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	used, err := checkHeader(data[:size])
	if err == nil && used > headerSize {
		f.layout, err = detectLayout(data, headerSize, used, f.layout)
	}
	if err != nil {
		unix.Munmap(data)
		return &badFileError{err}
	}
	// A file made by Python is sparse: writing into its holes would need
	// memory that a full tmpfs cannot give, and that is a SIGBUS. Reserve it.
	if err := f.reserve(fd, 0, int64(size)); err != nil {
		unix.Munmap(data)
		return fmt.Errorf("reserve %d bytes: %w", size, err)
	}
	f.fd, f.data, f.size, f.used = fd, data, size, used
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	f.index = make(map[string]*Cell)
	if used == headerSize {
		binary.LittleEndian.PutUint32(data, headerSize) // Python's 0 means 8
	}
	err = walk(data, headerSize, used, f.layout, func(e rawEntry) error {
		if _, dup := f.index[string(e.key)]; dup {
			return nil
		}
		// A key that readers cannot decode makes them skip the whole file:
		// better to start a fresh one than to write where nobody reads.
		if _, err := DecodeKey(e.key); err != nil {
			return &badFileError{fmt.Errorf("%w: %w", ErrCorrupt, err)}
		}
		f.addCell(string(e.key), e.valueOff)
		return nil
	})
	if err != nil {
		unix.Munmap(data)
		f.fd, f.data, f.index, f.cells = nil, nil, nil, nil
	}
	return err
}

func (f *File) addCell(key string, off int) *Cell {
	c := &Cell{ts: f.layout == Current, off: off}
	c.p.Store(word(f.data, off))
	f.index[key] = c
	f.cells = append(f.cells, c)
	return c
}

func roundPage(n int) int {
	p := os.Getpagesize()
	return (n + p - 1) / p * p
}

// create makes a new empty file at f.path and maps it. With replace, it
// renames over whatever is there; without, it fails with fs.ErrExist if a
// file appeared meanwhile.
func (f *File) create(replace bool) error {
	fd, data, err := f.makeFile(initialSize, func(data []byte) {
		binary.LittleEndian.PutUint32(data, headerSize)
	}, replace)
	if err != nil {
		return err
	}
	f.fd, f.data, f.size, f.used = fd, data, initialSize, headerSize
	f.index = make(map[string]*Cell)
	f.created = true
	return f.stampIdentity()
}

func (f *File) stampIdentity() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.fd.Fd()), &st); err != nil {
		return err
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	return nil
}

// makeFile creates a file under a temporary name beside f.path (a name that
// does not end in ".db", so readers ignore it), reserves size bytes, maps it,
// lets fill write the content, and renames it to f.path.
func (f *File) makeFile(size int, fill func(data []byte), replace bool) (*os.File, []byte, error) {
	dir, base := filepath.Split(f.path)
	if dir == "" {
		dir = "."
	}
	fd, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, nil, err
	}
	tmp := fd.Name()
	fail := func(data []byte, err error) (*os.File, []byte, error) {
		if data != nil {
			unix.Munmap(data)
		}
		fd.Close()
		os.Remove(tmp)
		return nil, nil, err
	}
	if err := fd.Chmod(f.mode); err != nil {
		return fail(nil, err)
	}
	if err := f.lock(fd); err != nil { // held from before the rename: never unlocked at the path
		return fail(nil, err)
	}
	if err := f.reserve(fd, 0, int64(size)); err != nil {
		return fail(nil, fmt.Errorf("reserve %d bytes: %w", size, err))
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, max(f.mapLen, roundPage(size)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(nil, fmt.Errorf("mmap: %w", err))
	}
	fill(data)
	if replace {
		err = os.Rename(tmp, f.path)
	} else {
		err = renameNoReplace(tmp, f.path)
	}
	if err != nil {
		return fail(data, err)
	}
	return fd, data, nil
}

// renameNoReplace renames without overwriting an existing target, so that two
// processes racing to create one file end up sharing the first one.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// Filesystem without RENAME_NOREPLACE: link fails if the target exists.
		if err = os.Link(from, to); err == nil {
			os.Remove(from)
		}
		return err
	}
	if errors.Is(err, unix.EEXIST) {
		return fs.ErrExist
	}
	return err
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
