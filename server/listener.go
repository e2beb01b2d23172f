package server

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herdhttp/herd/prefork"
)

// appListener is where and how the application is served: its addresses
// (-bind, once or more), how the workers share the sockets
// (-listener-mode) and the mode of its unix sockets (-bind-mode).
// Everything the server does with the application's sockets goes through
// its methods: checking them (validate), opening them in this process (the
// in-process backend) and handing them to prefork (the worker pool), which
// owns the sockets of a master.
type appListener struct {
	addrs    []endpoint
	mode     prefork.ListenerMode // checked by prefork.Config.Check
	sockMode fs.FileMode
}

// An endpoint is one address the application listens on, parsed from
// -bind. Each kind of address is one type with these methods and one case
// in parseEndpoint.
type endpoint interface {
	// String is the address as given.
	String() string
	// resolve looks up what the address names on this machine.
	resolve() error
	// listen opens the socket in this process.
	listen(l appListener) (net.Listener, error)
	// preforkAddr is the address in a master's configuration.
	preforkAddr() string
}

// newAppListener parses the -bind addresses, -listener-mode and
// -bind-mode; it checks syntax only.
func newAppListener(binds []string, mode string, sockMode fs.FileMode) (appListener, error) {
	l := appListener{mode: prefork.ListenerMode(mode), sockMode: sockMode}
	if sockMode&^fs.ModePerm != 0 {
		return l, fmt.Errorf("-bind-mode: must be permission bits (at most 0777), got %#o", uint32(sockMode))
	}
	seen := map[string]bool{}
	for _, b := range binds {
		e, err := parseEndpoint(b)
		if err != nil {
			return appListener{}, err
		}
		if seen[e.String()] {
			return appListener{}, fmt.Errorf("-bind: %s given twice", e)
		}
		seen[e.String()] = true
		l.addrs = append(l.addrs, e)
	}
	if len(l.addrs) == 0 {
		return appListener{}, fmt.Errorf("-bind: no address")
	}
	return l, nil
}

// parseEndpoint parses one -bind address: HOST:PORT, [IPv6]:PORT or
// unix:/path/to.sock.
func parseEndpoint(s string) (endpoint, error) {
	if p, ok := strings.CutPrefix(s, prefork.UnixPrefix); ok {
		return newUnixEndpoint(p)
	}
	if err := checkTCPAddr("-bind", s); err != nil {
		return nil, err
	}
	return tcpEndpoint(s), nil
}

func (l appListener) resolve() error {
	for _, e := range l.addrs {
		if err := e.resolve(); err != nil {
			return err
		}
	}
	return nil
}

// ordered returns the endpoints in the order of the sockets: TCP first,
// then unix sockets (prefork.Master.Addrs), each in the order given.
func (l appListener) ordered() []endpoint {
	var tcp, other []endpoint
	for _, e := range l.addrs {
		if _, ok := e.(tcpEndpoint); ok {
			tcp = append(tcp, e)
		} else {
			other = append(other, e)
		}
	}
	return append(tcp, other...)
}

// listenInProcess opens the sockets of a process that serves without
// workers: one socket per address, whatever the mode, in the order a
// master's workers get them.
func (l appListener) listenInProcess() ([]net.Listener, error) {
	var lns []net.Listener
	for _, e := range l.ordered() {
		ln, err := e.listen(l)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// configurePrefork sets the addresses and the listener mode of a master.
func (l appListener) configurePrefork(pc *prefork.Config) {
	pc.Mode = l.mode
	pc.SocketMode = l.sockMode
	for _, e := range l.addrs {
		pc.Addrs = append(pc.Addrs, e.preforkAddr())
	}
}

// tcpEndpoint is a TCP address, HOST:PORT or [IPv6]:PORT; port 0 picks a
// free port.
type tcpEndpoint string

func (e tcpEndpoint) String() string      { return string(e) }
func (e tcpEndpoint) resolve() error      { return lookupHost("-bind", string(e)) }
func (e tcpEndpoint) preforkAddr() string { return string(e) }

func (e tcpEndpoint) listen(appListener) (net.Listener, error) {
	ln, err := net.Listen("tcp", string(e))
	if err != nil {
		return nil, fmt.Errorf("-bind: %w", err)
	}
	return ln, nil
}

// unixEndpoint is a unix socket, "unix:" and an absolute path (a relative
// one is made absolute when parsed, so that the socket's file is removed
// from the same place however the program changes directory).
type unixEndpoint string

func newUnixEndpoint(path string) (endpoint, error) {
	if path == "" {
		return nil, fmt.Errorf("-bind: unix: needs a path (unix:/run/app.sock)")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("-bind: unix:%s: %w", path, err)
	}
	return unixEndpoint(abs), nil // its length is checked by prefork.Config.Check
}

func (e unixEndpoint) String() string      { return prefork.UnixPrefix + string(e) }
func (e unixEndpoint) preforkAddr() string { return e.String() }

// resolve checks that the socket's directory exists.
func (e unixEndpoint) resolve() error {
	dir := filepath.Dir(string(e))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("-bind: %s: directory %s does not exist", e, dir)
	}
	return nil
}

func (e unixEndpoint) listen(l appListener) (net.Listener, error) {
	ln, err := prefork.ListenUnix(string(e), l.sockMode)
	if err != nil {
		return nil, preforkError(err)
	}
	return ln, nil
}

// checkTCPAddr checks the syntax of a TCP listen address.
func checkTCPAddr(flagName, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: bad port %q", flagName, port)
	}
	return nil
}

// lookupHost resolves the host of a TCP listen address that is a name.
func lookupHost(flagName, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		// Names other than localhost need a resolver at start-up;
		// listen addresses are IPs in practice.
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%s: unknown host %q", flagName, host)
		}
	}
	return nil
}
