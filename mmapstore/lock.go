package mmapstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

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
