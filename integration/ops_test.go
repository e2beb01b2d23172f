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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
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
	t.Parallel()
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
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := status("/healthz", "", ""); got != 200 {
			return fmt.Errorf("GET /healthz: %d, want 200", got)
		}
		return nil
	})
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
