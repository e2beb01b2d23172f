package server

import (
	"fmt"
	"net"
	"strconv"

	"github.com/herdhttp/herd/prefork"
)

// appListener is where and how the application is served: its address
// (-bind) and how the workers share the socket (-listener-mode). Everything
// the server does with the application's sockets goes through its methods:
// checking them (validate), opening them in this process (the in-process
// backend) and handing them to prefork (the worker pool), which owns the
// sockets of a master.
type appListener struct {
	addr endpoint
	mode prefork.ListenerMode // checked by prefork.Config.Check
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
	listen() (net.Listener, error)
	// configurePrefork adds the address to a master's configuration.
	configurePrefork(pc *prefork.Config)
}

// newAppListener parses -bind and -listener-mode; it checks syntax only.
func newAppListener(bind, mode string) (appListener, error) {
	e, err := parseEndpoint(bind)
	if err != nil {
		return appListener{}, err
	}
	return appListener{addr: e, mode: prefork.ListenerMode(mode)}, nil
}

// parseEndpoint parses one -bind address.
func parseEndpoint(s string) (endpoint, error) {
	if err := checkTCPAddr("-bind", s); err != nil {
		return nil, err
	}
	return tcpEndpoint(s), nil
}

func (l appListener) resolve() error { return l.addr.resolve() }

// listenInProcess opens the sockets of a process that serves without
// workers: one socket, whatever the mode.
func (l appListener) listenInProcess() ([]net.Listener, error) {
	ln, err := l.addr.listen()
	if err != nil {
		return nil, err
	}
	return []net.Listener{ln}, nil
}

// configurePrefork sets the addresses and the listener mode of a master.
func (l appListener) configurePrefork(pc *prefork.Config) {
	pc.Mode = l.mode
	l.addr.configurePrefork(pc)
}

// tcpEndpoint is a TCP address, HOST:PORT or [IPv6]:PORT; port 0 picks a
// free port.
type tcpEndpoint string

func (e tcpEndpoint) String() string { return string(e) }
func (e tcpEndpoint) resolve() error { return lookupHost("-bind", string(e)) }

func (e tcpEndpoint) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", string(e))
	if err != nil {
		return nil, fmt.Errorf("-bind: %w", err)
	}
	return ln, nil
}

func (e tcpEndpoint) configurePrefork(pc *prefork.Config) {
	pc.Addrs = append(pc.Addrs, string(e))
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
