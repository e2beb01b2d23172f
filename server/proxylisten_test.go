package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// remoteApp answers every request with its RemoteAddr.
func remoteApp(w *Worker) (http.Handler, error) {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, r.RemoteAddr)
	}), nil
}

// rawRequest sends prefix and a GET on a new connection to addr and returns
// the body, or the error that ended the connection.
func rawRequest(t *testing.T, addr string, prefix []byte) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(append(prefix, "GET / HTTP/1.1\r\nHost: herd\r\nConnection: close\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// closedByServer reports an error that says the server closed the
// connection without answering.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (err != nil && strings.Contains(err.Error(), "connection reset"))
}

func TestProxyProtocolFromTrustedSources(t *testing.T) {
	t.Parallel()
	alog := filepath.Join(t.TempDir(), "access.log")
	var logs testutil.SyncBuffer
	srv := startQuiet(t, Config{ProxyProtocol: true, AccessLog: alog, ReadHeaderTimeout: 500 * time.Millisecond}, remoteApp, &logs)
	addr := srv.Addrs()[0].String()
	for _, tc := range []struct {
		name   string
		header []byte
		want   string
	}{
		{"v1", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "203.0.113.7:56324"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 4242 443\r\n"), "[2001:db8::1]:4242"},
		{"v2", proxyV2(1, 0x11, inet4("198.51.100.9", "192.0.2.1", 1234, 443), []byte{4, 0, 0}), "198.51.100.9:1234"},
		{"v2 LOCAL", proxyV2(0, 0, nil, nil), "127.0.0.1:"},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "127.0.0.1:"},
	} {
		got, err := rawRequest(t, addr, tc.header)
		if err != nil || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: RemoteAddr %q (%v), want %s", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"no header", nil},
		{"malformed", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 99999 443\r\n")},
		{"v2 malformed", proxyV2(1, 0x11, make([]byte, 5), nil)},
	} {
		if got, err := rawRequest(t, addr, tc.header); !closedByServer(err) {
			t.Errorf("%s from a trusted source: %q %v, want the connection closed", tc.name, got, err)
		}
	}
	// A header that never comes costs its connection after the timeout,
	// and does not hold up the others.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("PROXY TCP4 203.0.113.7"))
	if got, err := rawRequest(t, addr, []byte("PROXY TCP4 203.0.113.8 192.0.2.1 1 443\r\n")); err != nil || got != "203.0.113.8:1" {
		t.Errorf("a request while another header is late: %q %v", got, err)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); !closedByServer(err) {
		t.Errorf("a late header: %v, want the connection closed by the server", err)
	}
	testutil.EventuallyTrue(t, 10*time.Second, "the client address in the access log", func() bool {
		b, _ := os.ReadFile(alog)
		return strings.Contains(string(b), "203.0.113.7 - - [") && strings.Contains(string(b), "198.51.100.9 - - [")
	})
	if l := logs.String(); !strings.Contains(l, `msg="bad PROXY header from a trusted source: connection closed"`) {
		t.Errorf("the malformed header is not logged:\n%s", l)
	}
}

// From a source not in -proxy-protocol-from, a connection is served as a
// direct client, unless it starts with a PROXY header.
func TestProxyProtocolFromOtherSources(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	srv := startQuiet(t, Config{ProxyProtocol: true, ProxyProtocolFrom: []string{"192.0.2.0/24", "2001:db8::1"}}, remoteApp, &logs)
	addr := srv.Addrs()[0].String()
	if got, err := rawRequest(t, addr, nil); err != nil || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("a direct client: %q %v", got, err)
	}
	for name, header := range map[string][]byte{
		"v1": []byte("PROXY TCP4 203.0.113.7 192.0.2.1 1 443\r\n"),
		"v2": proxyV2(1, 0x11, inet4("203.0.113.7", "192.0.2.1", 1, 443), nil),
	} {
		if got, err := rawRequest(t, addr, header); !closedByServer(err) {
			t.Errorf("%s header from an untrusted source: %q %v, want the connection closed", name, got, err)
		}
	}
	if !strings.Contains(logs.String(), "PROXY header from an untrusted source: connection closed") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// The header comes before the TLS handshake.
func TestProxyProtocolWithTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "app CA")
	certFile, keyFile := ca.files(t, 1)
	srv := startQuiet(t, Config{ProxyProtocol: true, TLSCert: certFile, TLSKey: keyFile}, remoteApp, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_, err = conn.Write([]byte("PROXY TCP6 2001:db8::7 2001:db8::2 8443 443\r\n"))
			}
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + srv.Addrs()[0].String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "[2001:db8::7]:8443" || resp.Proto != "HTTP/2.0" {
		t.Errorf("over TLS after a PROXY header: %q %s", b, resp.Proto)
	}
}

// Every peer of a unix socket may (and must) send a header.
func TestProxyProtocolOnAUnixSocket(t *testing.T) {
	t.Parallel()
	dir := testutil.SockDir(t)
	sock := filepath.Join(dir, "app.sock")
	startQuiet(t, Config{Bind: []string{"unix:" + sock}, ProxyProtocol: true, ProxyProtocolFrom: []string{"192.0.2.0/24"}}, remoteApp, nil)
	get := func(header string) (string, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, header+"GET / HTTP/1.1\r\nHost: herd\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get("PROXY TCP4 203.0.113.7 192.0.2.1 4321 443\r\n"); err != nil || got != "203.0.113.7:4321" {
		t.Errorf("header over a unix socket: %q %v", got, err)
	}
	if got, err := get(""); !closedByServer(err) {
		t.Errorf("no header over a unix socket: %q %v, want the connection closed", got, err)
	}
}

func TestProxyProtocolConfigurationErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ProxyProtocol: true, ProxyProtocolFrom: []string{"10.0.0.0/33"}}, `-proxy-protocol-from: "10.0.0.0/33" is not a CIDR (10.0.0.0/8) or an address`},
		{Config{ProxyProtocol: true, ProxyProtocolFrom: []string{"proxy.local"}}, `-proxy-protocol-from: "proxy.local" is not a CIDR (10.0.0.0/8) or an address`},
		{Config{ProxyProtocolFrom: []string{"10.0.0.0/8"}}, "-proxy-protocol-from needs -proxy-protocol"},
	} {
		tc.cfg.MetricsDir = t.TempDir()
		if err := tc.cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	p, err := parseProxyFrom([]string{"10.1.2.3", "::ffff:0:0/96", "192.168.0.0/16"})
	if err != nil || fmt.Sprint(p) != "[10.1.2.3/32 ::ffff:0.0.0.0/96 192.168.0.0/16]" {
		t.Errorf("parseProxyFrom: %v %v", p, err)
	}
	pol := &proxyPolicy{trusted: p}
	for a, want := range map[string]bool{"10.1.2.3:1": true, "10.1.2.4:1": false, "192.168.9.9:1": true, "[::1]:1": false} {
		ta, _ := net.ResolveTCPAddr("tcp", a)
		if pol.trusts(ta) != want {
			t.Errorf("trusts(%s) = %v", a, !want)
		}
	}
}
