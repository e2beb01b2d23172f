package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// protoApp answers every request with its protocol ("HTTP/2.0\n").
func protoApp(w *Worker) (http.Handler, error) {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, r.Proto+"\n")
	}), nil
}

// startQuiet starts cfg on 127.0.0.1:0 in this process, its logs in logs
// (may be nil), and shuts it down at cleanup. The admin listener is off
// unless cfg.MetricsBind names one.
func startQuiet(t *testing.T, cfg Config, app App, logs io.Writer) *Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	if cfg.Bind == nil {
		cfg.Bind = []string{"127.0.0.1:0"}
	}
	if cfg.MetricsBind == "" {
		cfg.MetricsBind = "off"
	}
	cfg.MetricsDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	srv, err := Start(context.Background(), cfg, app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

// tlsGet makes one request on a new connection and returns the protocol
// the handler saw, the TLS version and the serial of the server's
// certificate.
func tlsGet(t *testing.T, url string, conf *tls.Config, h2 bool) (proto string, version uint16, serial int64, err error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: h2}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return "", 0, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.TrimSpace(string(b)) != resp.Proto {
		t.Errorf("handler saw %q, client %q", b, resp.Proto)
	}
	return resp.Proto, resp.TLS.Version, resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
}

// Every TCP address is served over TLS 1.2+, HTTP/2 by ALPN; a unix socket
// stays plain; a renewed certificate reaches new connections.
func TestAppTLSServesHTTP2AndReloadsItsCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "app CA")
	certFile, keyFile := ca.files(t, 1)
	sdir := testutil.SockDir(t)
	sock := filepath.Join(sdir, "app.sock")
	var logs testutil.SyncBuffer
	srv := startQuiet(t, Config{Bind: []string{"127.0.0.1:0", "unix:" + sock}, TLSCert: certFile, TLSKey: keyFile}, protoApp, &logs)
	url := srv.URL() + "/"
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	proto, version, serial, err := tlsGet(t, url, &tls.Config{RootCAs: pool}, true)
	if err != nil || proto != "HTTP/2.0" || version < tls.VersionTLS12 || serial != 1 {
		t.Errorf("HTTP/2 client: %s, TLS %x, serial %d, %v\n%s", proto, version, serial, err, logs.String())
	}
	if proto, _, _, err := tlsGet(t, url, &tls.Config{RootCAs: pool}, false); err != nil || proto != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 client: %s %v", proto, err)
	}
	if _, _, _, err := tlsGet(t, url, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}, true); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if code, body := get(t, uc, "http://herd/", "", ""); code != 200 || body != "HTTP/1.1\n" {
		t.Errorf("unix socket: %d %q, want plain HTTP/1.1", code, body)
	}
	uc.CloseIdleConnections()

	c2, k2 := ca.issue(t, 2, false)
	writeAtomic(t, keyFile, k2)
	writeAtomic(t, certFile, c2)
	testutil.EventuallyTrue(t, 10*time.Second, "the renewed certificate on new connections", func() bool {
		_, _, serial, err := tlsGet(t, url, &tls.Config{RootCAs: pool}, true)
		return err == nil && serial == 2
	})
	if !strings.Contains(logs.String(), `msg="TLS: certificate reloaded"`) {
		t.Errorf("no log line for the reload:\n%s", logs.String())
	}
}

func TestHTTP2CanBeTurnedOff(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "app CA")
	certFile, keyFile := ca.files(t, 1)
	srv := startQuiet(t, Config{TLSCert: certFile, TLSKey: keyFile, DisableHTTP2: true}, protoApp, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	if proto, _, _, err := tlsGet(t, "https://"+srv.Addrs()[0].String()+"/", &tls.Config{RootCAs: pool}, true); err != nil || proto != "HTTP/1.1" {
		t.Errorf("with -http2=false an HTTP/2 client got %s (%v), want HTTP/1.1", proto, err)
	}
}

// -h2c: HTTP/2 with prior knowledge, HTTP/2 after "Upgrade: h2c", and
// HTTP/1.1 still, on the same address.
func TestH2CPriorKnowledgeAndUpgrade(t *testing.T) {
	t.Parallel()
	srv := startQuiet(t, Config{H2C: true}, protoApp, nil)
	addr := srv.Addrs()[0].String()

	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	if code, body := get(t, &http.Client{Transport: tr}, "http://"+addr+"/", "", ""); code != 200 || body != "HTTP/2.0\n" {
		t.Errorf("prior knowledge: %d %q", code, body)
	}
	if code, body := get(t, &http.Client{Transport: &http.Transport{}}, "http://"+addr+"/", "", ""); code != 200 || body != "HTTP/1.1\n" {
		t.Errorf("HTTP/1.1: %d %q", code, body)
	}

	// Upgrade, as curl --http2 does it; two requests: the upgraded one on
	// stream 1, and one more on stream 3 of the same connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /upgraded?x=1 HTTP/1.1\r\nHost: herd\r\nUser-Agent: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "h2c" {
		t.Fatalf("upgrade answered %v %v", resp, err)
	}
	io.WriteString(c, h2cPreface)
	c.Write(appendFrame(nil, frameSettings, 0, 0, nil))
	if got := readStreamBody(t, c, br, 1); got != "HTTP/2.0\n" {
		t.Errorf("stream 1 (the upgraded request): %q", got)
	}
	// A second request: HEADERS with an indexed ":method GET" (2), ":scheme
	// http" (6), ":path /" (4) and a literal ":authority".
	block := append([]byte{0x82, 0x86, 0x84}, appendLiteral(nil, ":authority", "herd")...)
	c.Write(appendFrame(nil, frameHeaders, flagEndHeaders|flagEndStream, 3, block))
	if got := readStreamBody(t, c, br, 3); got != "HTTP/2.0\n" {
		t.Errorf("stream 3: %q", got)
	}

	// A request with a body is not upgraded: HTTP/1.1 answers it.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c2, "POST / HTTP/1.1\r\nHost: herd\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"+
		"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\nhi")
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST with Upgrade: %v %v", resp, err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "HTTP/1.1\n" {
		t.Errorf("POST with Upgrade served as %q, want HTTP/1.1", b)
	}
}

// readStreamBody reads HTTP/2 frames until stream ends and returns its
// DATA; it acknowledges the server's SETTINGS.
func readStreamBody(t *testing.T, c net.Conn, r *bufio.Reader, stream uint32) string {
	t.Helper()
	var body []byte
	for {
		hdr := make([]byte, 9)
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatalf("reading a frame: %v (body so far %q)", err, body)
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags, id := hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == frameSettings && flags&flagAck == 0:
			c.Write(appendFrame(nil, frameSettings, flagAck, 0, nil))
		case typ == 0x7: // GOAWAY
			t.Fatalf("GOAWAY: %x", payload)
		case typ == 0x3 && id == stream: // RST_STREAM
			t.Fatalf("stream %d reset: %x", stream, payload)
		case typ == 0x0 && id == stream: // DATA
			body = append(body, payload...)
		}
		if id == stream && (typ == 0x0 || typ == frameHeaders) && flags&flagEndStream != 0 {
			return string(body)
		}
	}
}

func TestTLSAndH2CConfigurationErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{TLSCert: "c.pem"}, "-tls-cert and -tls-key go together"},
		{Config{H2C: true, DisableHTTP2: true}, "-h2c serves HTTP/2 and -http2=false turns it off: give one of them"},
		{Config{Bind: []string{"unix:/tmp/x.sock"}, TLSCert: garbage, TLSKey: garbage}, "-tls-cert: -bind has no TCP address to serve over TLS (unix sockets stay plain)"},
		{Config{TLSCert: garbage, TLSKey: garbage}, "-tls-cert/-tls-key: tls: failed to find any PEM data in certificate input"},
		{Config{TLSCert: filepath.Join(dir, "none.pem"), TLSKey: garbage}, "-tls-cert/-tls-key: open " + filepath.Join(dir, "none.pem") + ": no such file or directory"},
	} {
		tc.cfg.MetricsDir = dir
		if err := tc.cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
