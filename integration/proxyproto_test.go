package integration

// PROXY protocol through bin/hello: the client address of a v1 or v2
// header is the request's and the access log's; a header from an untrusted
// source, a malformed one, or none from a trusted source costs its
// connection and never a worker.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// proxiedGet sends header and GET path on a new connection to hostport,
// and returns the status, or the error that ended the connection.
func proxiedGet(t *testing.T, hostport string, header []byte, path string) (int, error) {
	t.Helper()
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.Write(append(header, "GET "+path+" HTTP/1.1\r\nHost: herd\r\nConnection: close\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func v2Header(src [4]byte, sport uint16) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	b = append(b, src[:]...)
	b = append(b, 192, 0, 2, 1)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, 443)
}

func TestProxyProtocolThroughHello(t *testing.T) {
	t.Parallel()
	alog := filepath.Join(t.TempDir(), "access.log")
	p := startHello(t, "-workers", "2", "-proxy-protocol", "-access-log", alog)
	before := p.waitReady(2)
	hostport := strings.TrimPrefix(p.app, "http://")
	if code, err := proxiedGet(t, hostport, []byte("PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"), "/users/v1"); err != nil || code != 200 {
		t.Errorf("v1: %d %v", code, err)
	}
	if code, err := proxiedGet(t, hostport, v2Header([4]byte{198, 51, 100, 9}, 1234), "/users/v2"); err != nil || code != 200 {
		t.Errorf("v2: %d %v", code, err)
	}
	// Hostile or broken: each costs its connection only.
	for i := range 20 {
		for _, h := range [][]byte{nil, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"), []byte("PROXY " + strings.Repeat("A", 200)), []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff")} {
			if code, err := proxiedGet(t, hostport, h, "/hello"); err == nil {
				t.Fatalf("round %d: header %q answered %d, want the connection closed", i, h, code)
			}
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		log := strings.Join(lines(t, alog), "\n")
		for _, want := range []string{`203.0.113.7 - - [`, `"GET /users/v1 HTTP/1.1" 200`, `198.51.100.9 - - [`, `"GET /users/v2 HTTP/1.1" 200`} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("access log has no %q:\n%s", want, log)
			}
		}
		if strings.Contains(log, "127.0.0.1") {
			return fmt.Errorf("the proxy's address is in the access log:\n%s", log)
		}
		return nil
	})
	after := p.waitReady(2)
	for i := range before {
		if before[i].PID != after[i].PID {
			t.Errorf("worker %d replaced (pid %d -> %d) by bad PROXY headers", i, before[i].PID, after[i].PID)
		}
	}
	if strings.Contains(p.log.String(), "worker exited") {
		t.Errorf("a worker exited:\n%s", p.log.String())
	}
}

func TestProxyProtocolFromAnUntrustedSource(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "1", "-proxy-protocol", "-proxy-protocol-from", "192.0.2.0/24,2001:db8::/32")
	p.waitReady(1)
	hostport := strings.TrimPrefix(p.app, "http://")
	if code, err := proxiedGet(t, hostport, nil, "/hello"); err != nil || code != 200 {
		t.Errorf("a direct client from an untrusted source: %d %v, want 200", code, err)
	}
	_, err := proxiedGet(t, hostport, []byte("PROXY TCP4 203.0.113.7 192.0.2.1 1 443\r\n"), "/hello")
	if err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset")) {
		t.Errorf("a PROXY header from 127.0.0.1, not trusted: %v, want the connection closed", err)
	}
	p.waitLog(t, "PROXY header from an untrusted source: connection closed", 10*time.Second)
}
