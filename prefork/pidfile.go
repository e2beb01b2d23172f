package prefork

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The pidfile. Its directory must belong to root or this user and be
// writable by nobody else unless it has the sticky bit (as /run and /tmp
// are): otherwise another user could replace the file under the master.
// The file itself is opened without following a symbolic link and without
// blocking, and must be a regular file of this user or root: a FIFO, a
// device or a link planted at the path is refused at once, never waited on
// or written through.
//
// The master holds an exclusive flock(2) on its pidfile for as long as it
// runs, so "already running" does not depend on what the file says or on
// pids not being reused: a second master finds the lock taken and refuses
// to start. The file is replaced atomically (a new file, locked before it
// is renamed into place), so a reader never sees it half written.

// maxPIDFile bounds what is read of an existing pidfile.
const maxPIDFile = 64

// checkPIDFile fails if path's directory is unusable, if the file at path is
// not one a master may replace, or if another master holds it.
func checkPIDFile(path string, e *env) error {
	if err := checkPIDDir(path); err != nil {
		return err
	}
	f, err := openPIDFile(path)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return heldErr(path, f, err)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxPIDFile))
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return nil // garbage: stale, will be replaced
	}
	// Unlocked but naming a live process: a program that does not lock
	// its pidfile (or an older herd) may still run.
	if pid != e.getpid() && processAlive(e, pid) {
		return configErr("pidfile %s: already running as pid %d", path, pid)
	}
	return nil
}

// checkPIDDir applies the directory rule above to path's directory.
func checkPIDDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return configErr("pidfile %s: directory %s does not exist", path, dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return configErr("pidfile %s: cannot read the owner of %s", path, dir)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return configErr("pidfile %s: directory %s is owned by uid %d, not by this user (uid %d) or root", path, dir, st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return configErr("pidfile %s: directory %s is writable by other users (mode %04o) and has no sticky bit", path, dir, fi.Mode().Perm())
	}
	return nil
}

// openPIDFile opens the existing file at path for reading, or returns nil
// and no error if there is none. It refuses anything but a regular file of
// this user or root.
func openPIDFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP):
		return nil, configErr("pidfile %s is a symbolic link; give the real path", path)
	case err != nil:
		return nil, configErr("pidfile %s: %v", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, configErr("pidfile %s: %v", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, configErr("pidfile %s is not a regular file (%s); remove it", path, fileType(st.Mode))
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		f.Close()
		return nil, configErr("pidfile %s is owned by uid %d, not by this user (uid %d) or root; remove it", path, st.Uid, euid)
	}
	return f, nil
}

// heldErr is the error for a pidfile whose lock could not be taken.
func heldErr(path string, f *os.File, err error) error {
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return configErr("pidfile %s: lock: %v", path, err)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxPIDFile))
	if pid, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil && pid > 0 {
		return configErr("pidfile %s: already running as pid %d (it holds the lock)", path, pid)
	}
	return configErr("pidfile %s: already running (another process holds the lock)", path)
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a file"
}

// processAlive reads /proc/PID/stat: a zombie is not alive (it may linger unreaped when PID 1
// reaps lazily).
func processAlive(e *env, pid int) bool {
	b, err := e.readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st != 'Z' && st != 'X' && st != 'x'
}

// pidFile is a pidfile this process wrote and holds locked until remove.
type pidFile struct {
	path string
	f    *os.File // the file written, flock'ed exclusively
}

// pidFileAttempts bounds the retries of writePIDFile when another process
// creates or replaces the pidfile at the same moment.
const pidFileAttempts = 10

// writePIDFile writes pid to path and locks it: a new file, written and
// locked, then renamed over the old one (whose lock is held meanwhile, so
// that no other master replaces it at the same time) or linked into place
// if there was none.
func writePIDFile(path string, pid int) (*pidFile, error) {
	if err := checkPIDDir(path); err != nil {
		return nil, err
	}
	for range pidFileAttempts {
		old, changed, err := lockOld(path)
		if err != nil {
			return nil, err
		}
		if changed {
			continue
		}
		f, err := newLockedPIDFile(path, pid)
		if err != nil {
			if old != nil {
				old.Close()
			}
			return nil, err
		}
		if old != nil {
			err = os.Rename(f.Name(), path)
			old.Close()
		} else {
			err = os.Link(f.Name(), path)
			os.Remove(f.Name())
			if errors.Is(err, fs.ErrExist) {
				f.Close()
				continue // someone else's file appeared: look at it again
			}
		}
		if err != nil {
			os.Remove(f.Name())
			f.Close()
			return nil, fmt.Errorf("prefork: pidfile %s: %w", path, err)
		}
		return &pidFile{path: path, f: f}, nil
	}
	return nil, fmt.Errorf("prefork: pidfile %s: replaced by another process %d times in a row", path, pidFileAttempts)
}

// lockOld opens the existing pidfile and takes its lock, or returns nil if
// there is none; changed reports that the path no longer names the file
// it locked (look again).
func lockOld(path string) (f *os.File, changed bool, err error) {
	f, err = openPIDFile(path)
	if f == nil || err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		return nil, false, heldErr(path, f, err)
	}
	if !samePath(f, path) {
		f.Close()
		return nil, true, nil
	}
	return f, false, nil
}

// samePath reports whether path names the file f.
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(int(f.Fd()), &a) == nil && unix.Lstat(path, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// newLockedPIDFile creates a new file next to path holding pid, locked.
func newLockedPIDFile(path string, pid int) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("prefork: pidfile %s: %w", path, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		_, err = fmt.Fprintf(f, "%d\n", pid)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		os.Remove(f.Name())
		f.Close()
		return nil, fmt.Errorf("prefork: pidfile %s: %w", path, err)
	}
	return f, nil
}

// remove removes the pidfile if the path still names the file written,
// then releases the lock.
func (p *pidFile) remove() {
	if p == nil {
		return
	}
	if samePath(p.f, p.path) {
		os.Remove(p.path)
	}
	p.f.Close()
}

// unlock releases the lock but keeps the file: a new master started by a
// binary upgrade takes the pidfile over with writePIDFile.
func (p *pidFile) unlock() {
	if p != nil {
		unix.Flock(int(p.f.Fd()), unix.LOCK_UN)
	}
}

// PIDFile is a pidfile written by WritePIDFile, locked by this process
// until Remove.
type PIDFile struct{ p *pidFile }

// WritePIDFile writes this process's pid to path and holds an exclusive
// lock on the file until Remove (or exit). It refuses a pidfile that
// another process holds locked or that names another live process, a path
// that is not a regular file of this user or root (a FIFO, a device, a
// symbolic link), and a directory others may write without the sticky bit;
// a stale or garbled file is replaced atomically. A Master does this
// itself for Config.PIDFile; WritePIDFile is for programs that serve
// without one (the server's single-process mode).
func WritePIDFile(path string) (*PIDFile, error) {
	e := newStdEnv()
	if err := checkPIDFile(path, e); err != nil {
		return nil, err
	}
	p, err := writePIDFile(path, e.getpid())
	if err != nil {
		return nil, err
	}
	return &PIDFile{p}, nil
}

// Remove removes the pidfile if it is still the one written, and releases
// its lock. A nil PIDFile does nothing.
func (p *PIDFile) Remove() {
	if p != nil {
		p.p.remove()
	}
}
