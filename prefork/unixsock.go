package prefork

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Unix sockets. An address "unix:/path/to.sock" in Config.Addrs is a unix stream socket at
// that path: one socket, shared by every worker in either listener mode (SO_REUSEPORT
// brings nothing to unix sockets). The master creates it in NewMaster with mode
// Config.SocketMode and removes the file when it closes its sockets, if the file is still
// the one it created. A file left at the path by a run that crashed is replaced only when
// nothing listens on it; a live socket (another server) or a file that is not a socket is a
// configuration error.

// UnixPrefix starts an address of Config.Addrs that is a unix socket.
const UnixPrefix = "unix:"

// DefaultSocketMode is the mode of a unix socket when Config.SocketMode is zero: the
// master's user and group may connect (a proxy in the group, such as nginx's).
const DefaultSocketMode fs.FileMode = 0o660

// maxUnixPath is the longest path a unix socket address holds (sun_path, NUL excluded).
const maxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1

// unixSocket is a unix socket the master created.
type unixSocket struct {
	fd   int
	path string
	dev  uint64 // the file the master created, so that it removes only that one
	ino  uint64
}

// unixPath returns the path of a "unix:" address, checked.
func unixPath(a string) (string, bool, error) {
	p, ok := strings.CutPrefix(a, UnixPrefix)
	if !ok {
		return "", false, nil
	}
	switch {
	case p == "":
		return "", true, fieldErr("Addrs", "bad address %q: no path", a)
	case len(p) > maxUnixPath:
		return "", true, fieldErr("Addrs", "bad address %q: path longer than %d bytes", a, maxUnixPath)
	case strings.ContainsRune(p, 0):
		return "", true, fieldErr("Addrs", "bad address %q: path contains a NUL byte", a)
	}
	return p, true, nil
}

// clearStaleSocket makes room at path for a new socket: nothing there is fine; a socket
// file that refuses connections (its server is gone) is removed; a socket that accepts
// them, or anything else, is an error.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return errors.New("exists and is not a socket")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	unix.Close(fd)
	switch {
	case err == nil, errors.Is(err, unix.EAGAIN):
		// EAGAIN: a listening socket with a full backlog, as alive as one that accepts.
		return errors.New("in use: a server is listening on it")
	case errors.Is(err, unix.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing a stale socket: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("checking the existing socket: %w", err)
	}
}

// openUnixSocket creates a listening unix socket at path with the given mode.
func openUnixSocket(path string, mode fs.FileMode, backlog int) (*unixSocket, error) {
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	s := &unixSocket{fd: fd, path: path}
	// The mode is set before listen: until then a connection is refused, so no client
	// reaches the socket with the mode the umask gave it.
	var st unix.Stat_t
	if err := unix.Chmod(path, uint32(mode.Perm())); err != nil {
		s.close()
		return nil, fmt.Errorf("chmod: %w", err)
	}
	if err := unix.Lstat(path, &st); err != nil {
		s.close()
		return nil, fmt.Errorf("stat: %w", err)
	}
	s.dev, s.ino = st.Dev, st.Ino
	if err := unix.Listen(fd, backlog); err != nil {
		s.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return s, nil
}

// close closes the socket and removes its file if the file is still the one created.
func (s *unixSocket) close() {
	unix.Close(s.fd)
	var st unix.Stat_t
	if unix.Lstat(s.path, &st) == nil && st.Ino == s.ino && st.Dev == s.dev && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		unix.Unlink(s.path)
	}
}

// openUnixSockets opens the unix sockets of s.
func openUnixSockets(paths []string, mode fs.FileMode, backlog int) ([]*unixSocket, error) {
	var out []*unixSocket
	for _, p := range paths {
		u, err := openUnixSocket(p, mode, backlog)
		if err != nil {
			closeUnixSockets(out)
			return nil, fieldErr("Addrs", "listen unix %s: %v", p, err)
		}
		out = append(out, u)
	}
	return out, nil
}

func closeUnixSockets(us []*unixSocket) {
	for _, u := range us {
		u.close()
	}
}

// ListenUnix creates a listening unix socket at path, as a master does for a "unix:"
// address (a stale socket file replaced, a live one refused, mode set before the first
// connection; zero mode: DefaultSocketMode), for a program that serves without workers.
// Closing the listener removes the file. Errors are *ConfigError, as NewMaster's.
func ListenUnix(path string, mode fs.FileMode) (*net.UnixListener, error) {
	if mode == 0 {
		mode = DefaultSocketMode
	}
	if _, _, err := unixPath(UnixPrefix + path); err != nil {
		return nil, err
	}
	us, err := openUnixSockets([]string{path}, mode, defaultBacklog)
	if err != nil {
		return nil, err
	}
	u := us[0]
	f := os.NewFile(uintptr(u.fd), "unix:"+path)
	l, err := net.FileListener(f) // a duplicate of the descriptor
	f.Close()
	if err != nil {
		unix.Unlink(path)
		return nil, fmt.Errorf("prefork: listen unix %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(true)
	return ul, nil
}
