package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herd admin"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// passlibHash is an -admin-basic-auth-file hash (few rounds: a test).
func passlibHash(password string) string {
	ab64 := base64.RawStdEncoding
	salt := make([]byte, 16)
	rand.Read(salt)
	sum, _ := pbkdf2.Key(sha256.New, password, salt, 1000, 32)
	enc := func(b []byte) string { return strings.ReplaceAll(ab64.EncodeToString(b), "+", ".") }
	return "$pbkdf2-sha256$1000$" + enc(salt) + "$" + enc(sum)
}

func TestAdminListenerWithTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("prometheus:"+passlibHash("s3cret")+"\n"), 0o600)
	p := startHello(t, "-workers", "2", "-admin-tls-cert", certFile, "-admin-tls-key", keyFile, "-admin-basic-auth-file", users)
	admin := "https://" + strings.TrimPrefix(p.admin, "http://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status := func(path, user, pass string) int {
		req, _ := http.NewRequest("GET", admin+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for status("/healthz", "", "") != 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, tc := range []struct {
		path, user, pass string
		want             int
	}{
		{"/healthz", "", "", 200},
		{"/metrics", "", "", 401},
		{"/workers", "prometheus", "guess", 401},
		{"/metrics", "prometheus", "s3cret", 200},
		{"/workers", "prometheus", "s3cret", 200},
	} {
		if got := status(tc.path, tc.user, tc.pass); got != tc.want {
			t.Errorf("GET %s as %q: %d, want %d", tc.path, tc.user, got, tc.want)
		}
	}
	// Plain HTTP on the TLS port gets nothing useful.
	if resp, err := http.Get(p.admin + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served /metrics on the TLS admin listener")
		}
	}
}

// lines returns the lines of a file.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestAccessLogIsReopenedOnUSR1AndPIDFile(t *testing.T) {
	dir := t.TempDir()
	logPath, pidPath := filepath.Join(dir, "access.log"), filepath.Join(dir, "hello.pid")
	p := startHello(t, "-workers", "2", "-access-log", logPath, "-pidfile", pidPath)
	p.waitReady(2)
	if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("pidfile holds %q, want the master's pid %d", b, p.cmd.Process.Pid)
	}
	// Fresh connections, so that both workers log.
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/hello" })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.log.String(), "access log reopened") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(p.log.String(), "access log reopened"); n != 2 {
		t.Fatalf("%d workers reopened the access log after SIGUSR1, want 2", n)
	}
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/users/7" })
	old, cur := lines(t, logPath+".1"), lines(t, logPath)
	if len(old) != 100 || len(cur) != 100 {
		t.Errorf("rotated log has %d lines, new log %d: want 100 and 100", len(old), len(cur))
	}
	for _, l := range old {
		if !strings.Contains(l, `"GET /hello HTTP/1.1" 200 `) {
			t.Errorf("rotated log line %q", l)
			break
		}
	}
	for _, l := range cur {
		if !strings.Contains(l, `"GET /users/7 HTTP/1.1" 200 `) {
			t.Errorf("new log line %q", l)
			break
		}
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if _, err := os.Stat(pidPath); err == nil {
		t.Error("pidfile left behind after a clean stop")
	}
}
