package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// The PROXY protocol, versions 1 and 2 (haproxy.org/download/2.9/doc/
// proxy-protocol.txt): a proxy in front writes, before anything else on the
// connection, the address of the client it is relaying. This file parses
// the header; proxylisten.go decides whom to believe.

// proxyV2Sig starts a version 2 header.
const proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// proxyV1Max is the longest version 1 header, CRLF included.
const proxyV1Max = 107

// proxyV2MaxBody bounds the addresses and TLVs of a version 2 header that
// herd reads (the format allows 64 KiB; proxies send a few hundred bytes).
const proxyV2MaxBody = 4096

// proxyHeader is what a PROXY header says.
type proxyHeader struct {
	// src and dst are the client's and the proxy's addresses; nil when
	// the header says nothing of them (v1 UNKNOWN, v2 LOCAL or UNSPEC):
	// the connection's own addresses stand.
	src, dst net.Addr
}

var errNotProxy = errors.New("no PROXY header")

// readProxyHeader reads one PROXY header (v1 or v2) from r, and nothing
// after it.
func readProxyHeader(r *bufio.Reader) (proxyHeader, error) {
	b, err := r.Peek(1)
	if err != nil {
		return proxyHeader{}, err
	}
	switch b[0] {
	case 'P':
		return readProxyV1(r)
	case '\r':
		return readProxyV2(r)
	}
	return proxyHeader{}, errNotProxy
}

// readProxyV1 reads "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY
// UNKNOWN ...\r\n".
func readProxyV1(r *bufio.Reader) (proxyHeader, error) {
	var line []byte
	for len(line) < proxyV1Max {
		c, err := r.ReadByte()
		if err != nil {
			return proxyHeader{}, fmt.Errorf("PROXY v1: %w", noEOF(err))
		}
		line = append(line, c)
		if c == '\n' {
			break
		}
	}
	rest, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return proxyHeader{}, errors.New("PROXY v1: no CRLF within 107 bytes")
	}
	f := bytes.Split(rest, []byte(" "))
	if string(f[0]) != "PROXY" || len(f) < 2 {
		return proxyHeader{}, errors.New("PROXY v1: not a PROXY line")
	}
	proto := string(f[1])
	if proto == "UNKNOWN" {
		return proxyHeader{}, nil
	}
	if (proto != "TCP4" && proto != "TCP6") || len(f) != 6 {
		return proxyHeader{}, fmt.Errorf("PROXY v1: bad protocol or field count in %q", rest)
	}
	src, err1 := netip.ParseAddr(string(f[2]))
	dst, err2 := netip.ParseAddr(string(f[3]))
	sport, err3 := parsePort(f[4])
	dport, err4 := parsePort(f[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v1: %q: %w", rest, err)
	}
	if want4 := proto == "TCP4"; src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return proxyHeader{}, fmt.Errorf("PROXY v1: addresses of %q are not %s", rest, proto)
	}
	return proxyHeader{
		src: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport)),
		dst: net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, dport)),
	}, nil
}

// parsePort parses a decimal port without sign or leading zeros.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, fmt.Errorf("bad port %q", b)
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad port %q", b)
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", b)
	}
	return uint16(n), nil
}

// readProxyV2 reads the binary header: signature, version and command,
// family and transport, length, addresses, TLVs (skipped).
func readProxyV2(r *bufio.Reader) (proxyHeader, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v2: %w", noEOF(err))
	}
	if string(hdr[:12]) != proxyV2Sig {
		return proxyHeader{}, errNotProxy
	}
	if hdr[12]>>4 != 2 {
		return proxyHeader{}, fmt.Errorf("PROXY v2: version %d", hdr[12]>>4)
	}
	cmd, fam, transport := hdr[12]&0xf, hdr[13]>>4, hdr[13]&0xf
	n := int(binary.BigEndian.Uint16(hdr[14:]))
	if n > proxyV2MaxBody {
		return proxyHeader{}, fmt.Errorf("PROXY v2: %d bytes of addresses and TLVs, more than %d", n, proxyV2MaxBody)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY v2: %w", noEOF(err))
	}
	switch cmd {
	case 0: // LOCAL: the proxy's own connection (a health check)
		return proxyHeader{}, nil
	case 1: // PROXY
	default:
		return proxyHeader{}, fmt.Errorf("PROXY v2: command %d", cmd)
	}
	if transport != 1 && !(fam == 0 && transport == 0) {
		return proxyHeader{}, fmt.Errorf("PROXY v2: transport %d is not a stream", transport)
	}
	switch fam {
	case 0: // UNSPEC
		return proxyHeader{}, nil
	case 1, 2: // INET, INET6
		size := 4
		if fam == 2 {
			size = 16
		}
		if n < 2*size+4 {
			return proxyHeader{}, fmt.Errorf("PROXY v2: %d bytes for two addresses of %d bytes and ports", n, size)
		}
		src, _ := netip.AddrFromSlice(body[:size])
		dst, _ := netip.AddrFromSlice(body[size : 2*size])
		sport := binary.BigEndian.Uint16(body[2*size:])
		dport := binary.BigEndian.Uint16(body[2*size+2:])
		return proxyHeader{
			src: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport)),
			dst: net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst, dport)),
		}, nil
	case 3: // UNIX
		if n < 216 {
			return proxyHeader{}, fmt.Errorf("PROXY v2: %d bytes for two unix addresses", n)
		}
		return proxyHeader{
			src: &net.UnixAddr{Name: cString(body[:108]), Net: "unix"},
			dst: &net.UnixAddr{Name: cString(body[108:216]), Net: "unix"},
		}, nil
	}
	return proxyHeader{}, fmt.Errorf("PROXY v2: address family %d", fam)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// noEOF reports a header cut short as such.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// maybeProxyHeader reports whether b, the first bytes a client sent, could
// be the start of a PROXY header: a prefix of one of the signatures, or
// starting with one.
func maybeProxyHeader(b []byte) bool {
	for _, sig := range []string{"PROXY ", proxyV2Sig} {
		n := min(len(b), len(sig))
		if string(b[:n]) == sig[:n] {
			return true
		}
	}
	return false
}
