package prefork

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The listening sockets are raw, non-blocking, close-on-exec file descriptors that the master
// owns and never wraps in an *os.File: (*os.File).Fd, which exec.Cmd and os.StartProcess
// call on every file they pass, puts the descriptor in blocking mode, and O_NONBLOCK belongs
// to the open file description that every worker shares. A worker blocked in accept(2) on a
// blocking socket cannot be woken by closing its listener, so its drain would hang.

// sdListenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const sdListenFDsStart = 3

// defaultBacklog is used when net.core.somaxconn cannot be read.
const defaultBacklog = 4096

func (m *Master) backlog() int {
	if m.cfg.Backlog > 0 {
		return m.cfg.Backlog
	}
	b, err := m.env.readFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return defaultBacklog
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return defaultBacklog
	}
	return min(n, 1<<16-1)
}

// sockFamily picks the address family as net.Listen does: a wildcard host listens on IPv6
// and IPv4 (dual stack) when the kernel supports IPv6.
func sockFamily(a *net.TCPAddr) (family int, sa unix.Sockaddr, dual bool) {
	if a.IP == nil || a.IP.IsUnspecified() {
		return unix.AF_INET6, &unix.SockaddrInet6{Port: a.Port}, true
	}
	if ip4 := a.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip4)
		return unix.AF_INET, sa, false
	}
	sa6 := &unix.SockaddrInet6{Port: a.Port}
	copy(sa6.Addr[:], a.IP.To16())
	if a.Zone != "" {
		if ifi, err := net.InterfaceByName(a.Zone); err == nil {
			sa6.ZoneId = uint32(ifi.Index)
		}
	}
	return unix.AF_INET6, sa6, false
}

// openSocket binds and listens on a; reuseport sets SO_REUSEPORT.
func openSocket(a *net.TCPAddr, reuseport bool, backlog int) (int, error) {
	family, sa, dual := sockFamily(a)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil && dual && (errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT)) {
		family, sa, dual = unix.AF_INET, &unix.SockaddrInet4{Port: a.Port}, false
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if reuseport {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt SO_REUSEPORT", err)
		}
	}
	if family == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	return fd, nil
}

// localPort returns the port fd is bound to.
func localPort(fd int) (int, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port, nil
	case *unix.SockaddrInet6:
		return sa.Port, nil
	}
	return 0, fmt.Errorf("not an IP socket")
}

// probeAddrs binds every address without SO_REUSEPORT to prove it free: with SO_REUSEPORT a
// bind succeeds next to any other SO_REUSEPORT socket of the same user (say, a forgotten
// server still running), and the two would silently share the traffic. It returns the
// addresses with port 0 replaced by the port the kernel chose.
func probeAddrs(addrs []*net.TCPAddr) ([]*net.TCPAddr, error) {
	out := make([]*net.TCPAddr, len(addrs))
	for i, a := range addrs {
		fd, err := openSocket(a, false, 1)
		if err != nil {
			return nil, listenErr(a, err)
		}
		port, err := localPort(fd)
		unix.Close(fd)
		if err != nil {
			return nil, listenErr(a, err)
		}
		b := *a
		b.Port = port
		out[i] = &b
	}
	return out, nil
}

func listenErr(a *net.TCPAddr, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("prefork: listen tcp %s: %s", a, errno.Error())
	}
	return fmt.Errorf("prefork: listen tcp %s: %v", a, err)
}

// openSlotSockets opens one SO_REUSEPORT socket per address for one slot.
func openSlotSockets(addrs []*net.TCPAddr, backlog int) ([]int, error) {
	fds := make([]int, 0, len(addrs))
	for _, a := range addrs {
		fd, err := openSocket(a, true, backlog)
		if err != nil {
			closeFDs(fds)
			return nil, listenErr(a, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// listenerFD returns a close-on-exec duplicate of l's descriptor, taken without
// (*os.File).Fd, which would put the socket in blocking mode.
func listenerFD(l net.Listener) (int, error) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("a %T has no file descriptor", l)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	return fd, nil
}

// checkActivated verifies that systemd's descriptors are listening stream sockets and marks
// them close-on-exec so that only workers inherit them.
func checkActivated(fds []int) error {
	for _, fd := range fds {
		typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			return fmt.Errorf("prefork: socket activation: fd %d: %v", fd, err)
		}
		acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil || typ != unix.SOCK_STREAM || acc != 1 {
			return fmt.Errorf("prefork: socket activation: fd %d is not a listening stream socket", fd)
		}
		unix.CloseOnExec(fd)
	}
	return nil
}
