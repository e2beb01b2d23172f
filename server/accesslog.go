package server

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// logFile is an access log file that can be reopened, for log rotation:
// logrotate (or an operator) renames the file and sends SIGUSR1, and the
// next line goes to a new file at the old path. Every worker opens the file
// itself with O_APPEND, so the lines of several processes interleave whole
// (each line is one write(2)). Path "-" is standard output, never reopened.
//
// A logFile is safe for concurrent use.
type logFile struct {
	path string

	mu sync.Mutex // guards f
	f  *os.File
}

// accessLogMode is the mode of an access log file herd creates: readable
// by the group (log shippers), not by others (client addresses).
const accessLogMode = 0o640

func openLogFile(path string) (*logFile, error) {
	if path == "-" {
		return &logFile{path: path, f: os.Stdout}, nil
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

// openAppend opens (creating) the access log for appending. It refuses to
// write through a symbolic link at path (O_NOFOLLOW: a link planted in a
// shared log directory would make a root master append to any file), and
// anything but a regular file with a single link (a FIFO, a device, a hard
// link to another file); the open never blocks.
func openAppend(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, accessLogMode)
	if err != nil {
		// ELOOP, or EACCES in a sticky directory (fs.protected_*).
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("-access-log: %s is a symbolic link; give the real path", path)
		}
		return nil, fmt.Errorf("-access-log: %s: %w", path, err)
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = errors.New("not a regular file")
	case st.Nlink != 1:
		err = fmt.Errorf("has %d hard links, want 1", st.Nlink)
	default:
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("-access-log: %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Write writes one line (the access log middleware calls it once per line).
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path again and swaps it in if it now names a different
// file than the one being written (rotated away, or deleted); otherwise it
// does nothing. On error the old file stays in use.
func (l *logFile) Reopen() (reopened bool, err error) {
	if l.path == "-" {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.samePathLocked() {
		return false, nil
	}
	f, err := openAppend(l.path)
	if err != nil {
		return false, err
	}
	l.f.Close()
	l.f = f
	return true, nil
}

// samePathLocked reports whether the path still names the open file.
func (l *logFile) samePathLocked() bool {
	var a, b syscall.Stat_t
	if syscall.Stat(l.path, &a) != nil {
		return false
	}
	if syscall.Fstat(int(l.f.Fd()), &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// Close closes the file (not standard output).
func (l *logFile) Close() error {
	if l.path == "-" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
