package prefork

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
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
//
// A binary upgrade hands every unix socket to the new master ("herd-unix-<k>", with its path
// and file in HERD_UPGRADE), which adopts the inherited socket for each of its unix
// addresses with that path instead of creating one: the file stays, and connections queued
// on the socket are accepted by whichever master's workers come first. The socket file
// belongs to one master at a time, and only that one removes it: the old master until the
// new one took over, then the new one. So an old master that handed over leaves the file in
// place, and so does a new master that fails or is stopped before it took over. A new master
// that takes over sets its own Config.SocketMode on the files it inherited, so that a changed
// mode takes effect with the upgrade.

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
	// inherited: handed over by the master this one replaces, whose file this master
	// removes only once it took over.
	inherited bool
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

// openUnix opens the master's unix sockets at paths: in a new master started by an upgrade,
// the inherited socket of each path it has, a new one for any other path. Inherited sockets
// for a path no longer configured are closed (their files are left to the stale-socket
// check of a later start).
func (m *Master) openUnix(paths []string, mode fs.FileMode, backlog int) ([]*unixSocket, error) {
	in := m.inh
	if in == nil || len(in.unix) == 0 {
		return openUnixSockets(paths, mode, backlog)
	}
	byPath := map[string]int{}
	for k, h := range in.state.Unix {
		byPath[h.Path] = k
	}
	var out []*unixSocket
	for _, p := range paths {
		if k, ok := byPath[p]; ok {
			h := in.state.Unix[k]
			out = append(out, &unixSocket{fd: in.unix[k], path: p, dev: h.Dev, ino: h.Ino, inherited: true})
			delete(byPath, p)
			continue
		}
		u, err := openUnixSocket(p, mode, backlog)
		if err != nil {
			for _, u := range out {
				if u.inherited {
					unix.Close(u.fd) // the old master still serves on it
				} else {
					u.close()
				}
			}
			closeUnused(in, byPath)
			return nil, fieldErr("Addrs", "listen unix %s: %v", p, err)
		}
		out = append(out, u)
	}
	closeUnused(in, byPath)
	if len(byPath) > 0 {
		m.log.Warn("upgrade: closed the inherited unix sockets no address names", "sockets", len(byPath))
	}
	return out, nil
}

// closeUnused closes the inherited unix sockets left in byPath (path to index).
func closeUnused(in *inheritance, byPath map[string]int) {
	for _, k := range byPath {
		unix.Close(in.unix[k])
	}
}

// closeUnix closes the master's unix sockets and removes the files it owns: none once it
// handed over to a new master, and none it inherited unless it took over.
func (m *Master) closeUnix() {
	handedOver, tookOver := m.handedOver.Load(), m.tookOver.Load()
	for _, u := range m.unix {
		if handedOver || (u.inherited && !tookOver) {
			unix.Close(u.fd)
			continue
		}
		u.close()
	}
}

// applyUnixMode sets mode on the socket files this master inherited, as it takes them over;
// a file that is no longer the inherited socket's is left alone. Failures are logged.
func (m *Master) applyUnixMode(mode fs.FileMode) {
	for _, u := range m.unix {
		if !u.inherited {
			continue
		}
		if err := u.chmod(mode); err != nil {
			m.log.Warn("upgrade: cannot set the mode of an inherited unix socket", "path", u.path, "mode", fmt.Sprintf("%#o", uint32(mode.Perm())), "err", err)
		}
	}
}

// chmod sets the mode of the socket's file, if the file at its path is still that one. The
// file is opened (without following a link) and checked first, then changed through that
// descriptor, so that a file put at the path meanwhile is never changed.
func (u *unixSocket) chmod(mode fs.FileMode) error {
	fd, err := unix.Open(u.path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != u.dev || st.Ino != u.ino || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return errors.New("the file at the path is no longer the inherited socket")
	}
	if st.Mode&0o777 == uint32(mode.Perm()) {
		return nil
	}
	// fchmod does not work on an O_PATH descriptor; its /proc link does.
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), uint32(mode.Perm()))
}

// unixHandover returns the unix sockets' descriptors and what the new master learns of them.
func (m *Master) unixHandover() ([]int, []unixHandover) {
	fds := make([]int, 0, len(m.unix))
	hs := make([]unixHandover, 0, len(m.unix))
	for _, u := range m.unix {
		fds = append(fds, u.fd)
		hs = append(hs, unixHandover{Path: u.path, Dev: u.dev, Ino: u.ino})
	}
	return fds, hs
}

// checkUnix verifies that the inherited unix sockets are listening stream sockets bound to
// the paths the state gives, and marks them close-on-exec.
func (in *inheritance) checkUnix() error {
	if len(in.unix) != len(in.state.Unix) {
		return configErr("upgrade: %d unix sockets handed over, %s describes %d", len(in.unix), upgradeEnv, len(in.state.Unix))
	}
	if err := checkActivated(in.unix); err != nil {
		return err
	}
	seen := map[string]bool{}
	for k, fd := range in.unix {
		want := in.state.Unix[k].Path
		sa, err := unix.Getsockname(fd)
		ua, ok := sa.(*unix.SockaddrUnix)
		if err != nil || !ok || ua.Name != want || want == "" || seen[want] {
			return configErr("upgrade: fd %d is not the unix socket at %s", fd, want)
		}
		seen[want] = true
	}
	return nil
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
