package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// PROXY protocol on the application's listeners (-proxy-protocol). A
// connection from a trusted source (-proxy-protocol-from, loopback by
// default; every peer of a unix socket, whose file mode decides who
// connects) must start with a PROXY header, v1 or v2, and the client
// address it carries becomes the connection's RemoteAddr: the request's
// RemoteAddr and the access log's client. A connection from any other
// source is served as a direct client, unless it starts with a PROXY
// header: then it is closed, for a client must not choose its own address.
// A malformed header, or none from a trusted source, closes the connection
// too. The header must arrive within the read-header timeout (10s when
// that is off).
//
// Reading a header takes a goroutine per connection, so that a client that
// sends nothing cannot hold up the accept loop; Accept hands over the
// connections whose header was read. Closing the listener stops accepting,
// but the connections already accepted are still handed over once their
// header is read (a draining worker serves them): nothing accepted is
// dropped.

// defaultProxyFrom are the trusted sources when -proxy-protocol-from is not
// given.
var defaultProxyFrom = []string{"127.0.0.0/8", "::1/128"}

// parseProxyFrom parses -proxy-protocol-from: CIDRs, or single addresses.
func parseProxyFrom(list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		list = defaultProxyFrom
	}
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("-proxy-protocol-from: %q is not a CIDR (10.0.0.0/8) or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// proxyPolicy is the PROXY protocol setting of a serving process.
type proxyPolicy struct {
	trusted []netip.Prefix
	timeout time.Duration
	log     *slog.Logger // throttled: one line per message a minute
}

// trusts reports whether the peer a may send a PROXY header.
func (p *proxyPolicy) trusts(a net.Addr) bool {
	switch a := a.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return false
		}
		ip = ip.Unmap()
		for _, p := range p.trusted {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// proxyListener reads the PROXY header of each connection of l.
type proxyListener struct {
	net.Listener
	p       *proxyPolicy
	results chan acceptResult
	pending sync.WaitGroup // connections whose header is being read
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (p *proxyPolicy) listen(l net.Listener) *proxyListener {
	pl := &proxyListener{Listener: l, p: p, results: make(chan acceptResult)}
	go pl.acceptLoop()
	return pl
}

func (l *proxyListener) acceptLoop() {
	defer func() {
		l.pending.Wait()
		close(l.results)
	}()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if isTemporary(err) { // out of descriptors, say
				l.results <- acceptResult{err: err} // http.Server backs off
				continue
			}
			return
		}
		l.pending.Add(1)
		go func() {
			defer l.pending.Done()
			if pc := l.handshake(c); pc != nil {
				l.results <- acceptResult{c: pc}
			}
		}()
	}
}

func isTemporary(err error) bool {
	te, ok := err.(interface{ Temporary() bool })
	return ok && te.Temporary()
}

// Accept returns the next connection whose header was read; after Close,
// the pending ones, then net.ErrClosed.
func (l *proxyListener) Accept() (net.Conn, error) {
	r, ok := <-l.results
	if !ok {
		return nil, net.ErrClosed
	}
	return r.c, r.err
}

// handshake reads c's PROXY header as the policy says, and returns the
// connection to serve, or nil after closing c.
func (l *proxyListener) handshake(c net.Conn) net.Conn {
	peer := c.RemoteAddr()
	c.SetReadDeadline(time.Now().Add(l.p.timeout))
	br := bufio.NewReaderSize(c, 512)
	if !l.p.trusts(peer) {
		// Look at the first bytes only as far as needed to tell a
		// PROXY header from a request.
		for n := 1; n <= len(proxyV2Sig); n++ {
			b, err := br.Peek(n)
			if err != nil {
				// Too little to tell in time: leave it to the server's
				// own timeouts (net/http answers garbage with 400).
				break
			}
			if !maybeProxyHeader(b) {
				break
			}
			if n == len("PROXY ") && string(b) == "PROXY " || n == len(proxyV2Sig) {
				l.p.log.Warn("PROXY header from an untrusted source: connection closed (see -proxy-protocol-from)", "source", addrText(peer))
				c.Close()
				return nil
			}
		}
		c.SetReadDeadline(time.Time{})
		return &proxiedConn{Conn: c, r: br, remote: peer, local: c.LocalAddr()}
	}
	h, err := readProxyHeader(br)
	if err != nil {
		if errors.Is(err, errNotProxy) {
			err = fmt.Errorf("the connection does not start with a PROXY header")
		}
		if !isClosedOrTimeout(err) {
			l.p.log.Warn("bad PROXY header from a trusted source: connection closed", "source", addrText(peer), "err", err)
		}
		c.Close()
		return nil
	}
	c.SetReadDeadline(time.Time{})
	pc := &proxiedConn{Conn: c, r: br, remote: peer, local: c.LocalAddr()}
	if h.src != nil {
		pc.remote, pc.local = h.src, h.dst
	}
	return pc
}

// isClosedOrTimeout reports the ends of a connection that are not the
// header's fault: the client went away or stayed silent.
func isClosedOrTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout())
}

// proxiedConn is a connection whose header was read: reads continue after
// it, and its addresses are the header's.
type proxiedConn struct {
	net.Conn
	r             *bufio.Reader
	remote, local net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil // the buffer is drained: read the connection directly
	}
	return c.Conn.Read(p)
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }
func (c *proxiedConn) LocalAddr() net.Addr  { return c.local }

// addrText is a peer's address for the log.
func addrText(a net.Addr) string {
	if a == nil {
		return "?"
	}
	return a.String()
}
