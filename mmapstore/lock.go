package mmapstore

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPatience is how long Open waits for a lock held by another open file
// description before it reports ErrLocked. A writer that closed the file a
// moment ago may still hold it through a child process it forked just
// before: the child shares the descriptor, and so the lock, until it execs.
// A lock held by a live second writer is held longer than this.
const lockPatience = time.Second

// lock takes the File's exclusive lock on fd without waiting: ErrLocked if
// another open file description of the file holds it.
func (f *File) lock(fd *os.File) error {
	if f.noLock {
		return nil
	}
	return tryLock(f.flock, fd)
}

// tryLock takes an exclusive flock on fd through flock without waiting:
// ErrLocked if another open file description of the file holds it.
func tryLock(flock func(fd int, how int) error, fd *os.File) error {
	for {
		err := flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB)
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

// lockPatiently is lock, trying again for up to lockPatience while the
// lock is held, at growing intervals from 1 ms to 50 ms.
func (f *File) lockPatiently(fd *os.File) error {
	deadline := time.Now().Add(lockPatience)
	pause := time.Millisecond
	for {
		err := f.lock(fd)
		if err != ErrLocked || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
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
