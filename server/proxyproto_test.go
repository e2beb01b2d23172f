package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// proxyV2 builds a version 2 header.
func proxyV2(cmd, famProto byte, addrs []byte, tlvs []byte) []byte {
	b := []byte(proxyV2Sig)
	b = append(b, 0x20|cmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+len(tlvs)))
	b = append(b, addrs...)
	return append(b, tlvs...)
}

func inet4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func inet6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func unixAddrs(src, dst string) []byte {
	b := make([]byte, 216)
	copy(b, src)
	copy(b[108:], dst)
	return b
}

func TestReadProxyHeader(t *testing.T) {
	t.Parallel()
	const rest = "GET / HTTP/1.1\r\n\r\n"
	tlv := []byte{0x04, 0x00, 0x03, 'a', 'b', 'c'} // PP2_TYPE_NOOP with 3 bytes
	for _, tc := range []struct {
		name     string
		in       []byte
		src, dst string // "" for none
	}{
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "203.0.113.7:56324", "192.0.2.1:443"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"), "[2001:db8::1]:1", "[2001:db8::2]:65535"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), "", ""},
		{"v1 UNKNOWN alone", []byte("PROXY UNKNOWN\r\n"), "", ""},
		{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
		{"v2 INET", proxyV2(1, 0x11, inet4("203.0.113.7", "192.0.2.1", 56324, 443), nil), "203.0.113.7:56324", "192.0.2.1:443"},
		{"v2 INET with TLVs", proxyV2(1, 0x11, inet4("203.0.113.7", "192.0.2.1", 1, 2), tlv), "203.0.113.7:1", "192.0.2.1:2"},
		{"v2 INET6", proxyV2(1, 0x21, inet6("2001:db8::1", "2001:db8::2", 7, 8), tlv), "[2001:db8::1]:7", "[2001:db8::2]:8"},
		{"v2 UNIX", proxyV2(1, 0x31, unixAddrs("/run/client", "/run/app.sock"), nil), "/run/client", "/run/app.sock"},
		{"v2 LOCAL", proxyV2(0, 0x00, nil, nil), "", ""},
		{"v2 LOCAL with addresses", proxyV2(0, 0x11, inet4("10.0.0.1", "10.0.0.2", 1, 2), nil), "", ""},
		{"v2 UNSPEC", proxyV2(1, 0x00, nil, tlv), "", ""},
	} {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(tc.in), strings.NewReader(rest)))
		h, err := readProxyHeader(r)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := func(a interface{ String() string }) string {
			if a == nil || (h.src == nil && h.dst == nil) {
				return ""
			}
			return a.String()
		}
		if got(h.src) != tc.src || got(h.dst) != tc.dst {
			t.Errorf("%s: src %v dst %v, want %q %q", tc.name, h.src, h.dst, tc.src, tc.dst)
		}
		if after, _ := io.ReadAll(r); string(after) != rest {
			t.Errorf("%s: after the header %q, want %q (read too much or too little)", tc.name, after, rest)
		}
	}
}

func TestReadProxyHeaderRefusesMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not PROXY", []byte("GET / HTTP/1.1\r\n\r\n"), "no PROXY header"},
		{"no CRLF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "no CRLF"},
		{"too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"), "no CRLF within 107 bytes"},
		{"cut short", []byte("PROXY TCP4 1.2.3.4"), "unexpected EOF"},
		{"lower case", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "no PROXY header"},
		{"TCP4 with IPv6", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), "are not TCP4"},
		{"TCP6 with IPv4", []byte("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), "are not TCP6"},
		{"two spaces", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "field count"},
		{"port 65536", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "bad port"},
		{"leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), "bad port"},
		{"signed port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n"), "bad port"},
		{"bad address", []byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "ParseAddr"},
		{"zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "are not TCP6"},
		{"UDP4", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), "bad protocol"},
		{"v2 version 1", append([]byte(proxyV2Sig), 0x11, 0x11, 0, 0), "version 1"},
		{"v2 command 2", proxyV2(2, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2), nil), "command 2"},
		{"v2 DGRAM", proxyV2(1, 0x12, inet4("1.2.3.4", "5.6.7.8", 1, 2), nil), "not a stream"},
		{"v2 family 4", proxyV2(1, 0x41, make([]byte, 12), nil), "address family 4"},
		{"v2 short INET", proxyV2(1, 0x11, make([]byte, 11), nil), "two addresses"},
		{"v2 short INET6", proxyV2(1, 0x21, make([]byte, 35), nil), "two addresses"},
		{"v2 short UNIX", proxyV2(1, 0x31, make([]byte, 215), nil), "two unix addresses"},
		{"v2 too long", proxyV2(1, 0x11, make([]byte, 4097), nil), "more than 4096"},
		{"v2 cut short", proxyV2(1, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2), nil)[:20], "unexpected EOF"},
		{"v2 bad signature", append([]byte("\r\n\r\n\x00\r\nQUIT\r"), 0x21, 0x11, 0, 0), "no PROXY header"},
	} {
		_, err := readProxyHeader(bufio.NewReader(bytes.NewReader(tc.in)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// Whatever the bytes, the parser neither panics nor reads past the header
// it accepts, and what it accepts is bounded.
func FuzzReadProxyHeader(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET /"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		proxyV2(1, 0x11, inet4("203.0.113.7", "192.0.2.1", 1, 2), []byte{4, 0, 1, 0}),
		proxyV2(1, 0x21, inet6("::1", "::2", 1, 2), nil),
		proxyV2(1, 0x31, unixAddrs("/a", "/b"), nil),
		proxyV2(0, 0, nil, nil),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		h, err := readProxyHeader(r)
		if err != nil {
			return
		}
		after, _ := io.ReadAll(r)
		used := len(data) - len(after)
		if !bytes.Equal(after, data[used:]) {
			t.Fatalf("the bytes after the header changed")
		}
		switch {
		case data[0] == 'P' && (used > proxyV1Max || !bytes.HasSuffix(data[:used], []byte("\r\n"))):
			t.Fatalf("v1 header of %d bytes not ending in CRLF: %q", used, data[:used])
		case data[0] == '\r' && used > 16+proxyV2MaxBody:
			t.Fatalf("v2 header of %d bytes", used)
		}
		if (h.src == nil) != (h.dst == nil) {
			t.Fatalf("only one address: %v %v", h.src, h.dst)
		}
	})
}

func TestMaybeProxyHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"": true, "P": true, "PROXY": true, "PROXY TCP4": true, "\r\n\r\n\x00": true, proxyV2Sig + "!": true,
		"G": false, "GET /": false, "\x16\x03\x01": false, "PROXZ": false, "\r\n\r\nX": false,
	} {
		if got := maybeProxyHeader([]byte(in)); got != want {
			t.Errorf("maybeProxyHeader(%q) = %v", in, got)
		}
	}
}
