package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// The client CA file is read again when it changes, like the certificate:
// replacing it changes which clients get in, on new connections, without
// a restart; removing it admits nobody.
func TestAdminClientCAIsReloaded(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "herd test CA")
	oldClients, newClients := newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	certPEM, keyPEM := ca.issue(t, 2, false)
	writeAtomic(t, filepath.Join(dir, "cert.pem"), certPEM)
	writeAtomic(t, filepath.Join(dir, "key.pem"), keyPEM)
	caFile := filepath.Join(dir, "clients.pem")
	writeAtomic(t, caFile, oldClients.pem)
	base, _ := serveAdmin(t, Config{
		AdminTLSCert: filepath.Join(dir, "cert.pem"), AdminTLSKey: filepath.Join(dir, "key.pem"),
		AdminTLSClientCA: caFile,
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(signer *testCA) func() int {
		c, k := signer.issue(t, 7, true)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		// A new connection (and a full handshake) for every request.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}},
		}}
		return func() int {
			code, _ := get(t, hc, base+"/metrics", "", "")
			return code
		}
	}
	oldClient, newClient := client(oldClients), client(newClients)
	if code := oldClient(); code != 200 {
		t.Fatalf("client of the configured CA: %d", code)
	}
	if code := newClient(); code == 200 {
		t.Fatal("client of another CA admitted")
	}
	writeAtomic(t, caFile, newClients.pem)
	if !testutil.Until(10*time.Second, func() bool { return newClient() == 200 && oldClient() != 200 }) {
		t.Errorf("after replacing the client CA file: new CA's client %d, old CA's client %d; want 200 and a refusal", newClient(), oldClient())
	}
	os.Remove(caFile)
	if !testutil.Until(10*time.Second, func() bool { return newClient() != 200 }) {
		t.Error("client CA file removed: clients still admitted")
	}
	writeAtomic(t, caFile, newClients.pem)
	if !testutil.Until(10*time.Second, func() bool { return newClient() == 200 }) {
		t.Error("client CA file back: client still refused")
	}
}

// A TLS key that every user can read is refused at start-up with one line
// naming the flags; the certificate may be public.
func TestAdminTLSKeyReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "herd test CA")
	certPEM, keyPEM := ca.issue(t, 2, false)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o644)
	_, err := newAdminSecurity(Config{AdminTLSCert: certFile, AdminTLSKey: keyFile})
	if err == nil || !strings.HasPrefix(err.Error(), "-admin-tls-cert/-admin-tls-key: ") || !strings.Contains(err.Error(), "readable by every user") {
		t.Errorf("world-readable key: %v", err)
	}
	os.Chmod(keyFile, 0o640)
	if _, err := newAdminSecurity(Config{AdminTLSCert: certFile, AdminTLSKey: keyFile}); err != nil {
		t.Errorf("key of mode 0640, certificate 0644: %v", err)
	}
	// Through Validate, as Main sees it (exit status 2).
	users := writeUsers(t, minRounds, "prometheus", "s3cret")
	os.Chmod(users, 0o604)
	err = Config{MetricsDir: dir, AdminBasicAuthFile: users}.Validate()
	if err == nil || !strings.Contains(err.Error(), "readable by every user") {
		t.Errorf("Validate with a world-readable users file: %v", err)
	}
}
