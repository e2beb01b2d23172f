package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

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
	f := &File{path: path, mode: opts.Mode, layout: opts.Layout, noLock: opts.noLock, fallocate: opts.fallocate, flock: opts.flock}
	if f.fallocate == nil {
		f.fallocate = unix.Fallocate
	}
	if f.flock == nil {
		f.flock = unix.Flock
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
			if err := f.lockPatiently(fd); err != nil {
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
