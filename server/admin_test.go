package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for 127.0.0.1 (server) or a client.
func (ca *testCA) issue(t *testing.T, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "herd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeAtomic replaces path (new inode), as certificate renewal tools do.
func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// files writes a server certificate of the given serial and its key into
// a new directory, as a certificate renewal tool does, and returns their
// paths.
func (ca *testCA) files(t *testing.T, serial int64) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c, k := ca.issue(t, serial, false)
	writeAtomic(t, certFile, c)
	writeAtomic(t, keyFile, k)
	return certFile, keyFile
}

// serveAdmin starts the admin endpoints with cfg's protection and returns
// the base URL.
func serveAdmin(t *testing.T, cfg Config) (string, *adminSecurity) {
	t.Helper()
	cfg.MetricsBind = "127.0.0.1:0"
	sec, err := newAdminSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listenAdmin(cfg.MetricsBind, sec)
	if err != nil {
		t.Fatal(err)
	}
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	ready := func() []prefork.WorkerInfo { return []prefork.WorkerInfo{{State: prefork.StateReady}} }
	srv := startAdmin(ln, adminMux(g, ready, t.TempDir(), sec, nil), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { stopAdmin(srv) })
	scheme := "http://"
	if sec.tls != nil {
		scheme = "https://"
	}
	return scheme + ln.Addr().String(), sec
}

func get(t *testing.T, c *http.Client, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminBasicAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	h, err := hashPassword("s3cret", minRounds)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(users, []byte("# scrapers\nprometheus:"+h+"\n"), 0o600)
	base, sec := serveAdmin(t, Config{AdminBasicAuthFile: users})
	c := http.DefaultClient
	for _, tc := range []struct {
		path, user, pass string
		want             int
	}{
		{"/healthz", "", "", 200}, // open: probes carry no credentials
		{"/metrics", "", "", 401},
		{"/workers", "", "", 401},
		{"/metrics", "prometheus", "wrong", 401},
		{"/metrics", "nobody", "s3cret", 401},
		{"/metrics", "prometheus", "s3cret", 200},
		{"/workers", "prometheus", "s3cret", 200},
		{"/metrics", "prometheus", "s3cret", 200}, // remembered: no PBKDF2 this time
	} {
		if code, body := get(t, c, base+tc.path, tc.user, tc.pass); code != tc.want {
			t.Errorf("GET %s as %q/%q: %d %s, want %d", tc.path, tc.user, tc.pass, code, body, tc.want)
		}
	}
	// A changed file is read again: the old password stops working.
	h2, _ := hashPassword("n3w", minRounds)
	writeAtomic(t, users, []byte("prometheus:"+h2+"\n"))
	sec.auth.mu.Lock()
	sec.auth.checked = time.Time{}
	sec.auth.mu.Unlock()
	if code, _ := get(t, c, base+"/metrics", "prometheus", "s3cret"); code != 401 {
		t.Errorf("old password after the file changed: %d, want 401", code)
	}
	if code, _ := get(t, c, base+"/metrics", "prometheus", "n3w"); code != 200 {
		t.Errorf("new password after the file changed: %d, want 200", code)
	}
	// A broken file denies everyone (TestRevokingBasicAuthFailsClosed).
	writeAtomic(t, users, []byte("prometheus:plaintext\n"))
	sec.auth.mu.Lock()
	sec.auth.checked = time.Time{}
	sec.auth.mu.Unlock()
	if code, _ := get(t, c, base+"/metrics", "prometheus", "n3w"); code != 401 {
		t.Errorf("after a broken file: %d, want 401", code)
	}
}

func TestBasicAuthFileErrors(t *testing.T) {
	t.Parallel()
	good, _ := hashPassword("x", minRounds)
	for _, tc := range []struct{ name, content, want string }{
		{"empty", "# nobody\n", "no user"},
		{"no colon", "alice\n", "line 1"},
		{"plaintext", "alice:secret\n", "pbkdf2-sha256"},
		{"bcrypt", "alice:$2y$10$abcdefghijklmnopqrstuuJ9f8xTfNnSqyY5aW6Jb1gTwZ3rE5.G\n", "pbkdf2-sha256"},
		{"weak", "alice:$pbkdf2-sha256$10$c2FsdHNhbHQ$" + strings.Repeat("A", 43) + "\n", "rounds"},
		{"short salt", "alice:$pbkdf2-sha256$1000$YQ$" + strings.Repeat("A", 43) + "\n", "salt"},
		{"twice", "alice:" + good + "\nalice:" + good + "\n", "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "users")
			os.WriteFile(p, []byte(tc.content), 0o600)
			_, err := newBasicAuth(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "-admin-basic-auth-file: ") {
				t.Errorf("error %v, want one naming the flag and %q", err, tc.want)
			}
		})
	}
}

// pythonHashCmd is the one-liner of docs/reliability.md.
const pythonHashCmd = `import base64,getpass,hashlib,os; s=os.urandom(16); n=600000; h=hashlib.pbkdf2_hmac("sha256", getpass.getpass().encode(), s, n); b=lambda x: base64.b64encode(x).decode().rstrip("=").replace("+", "."); print(f"$pbkdf2-sha256${n}${b(s)}${b(h)}")`

func TestPythonMadeHashVerifies(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 (make test installs it): %v", err)
	}
	// The documented command with fewer rounds, to keep the test fast.
	cmd := exec.Command(py, "-c", strings.Replace(pythonHashCmd, "n=600000", "n=1000", 1))
	cmd.Stdin = strings.NewReader("hunter2\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	h, err := parsePBKDF2(string(bytes.TrimSpace(out)))
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if !h.matches("hunter2") || h.matches("hunter3") {
		t.Errorf("python's hash %q does not verify as it should", out)
	}
	// And the other way: ours in passlib's format, checked by Python.
	ours, _ := hashPassword("hunter2", minRounds)
	check := exec.Command(py, "-c", `import base64,hashlib,sys
_, alg, n, s, h = sys.argv[1].split("$")
d = lambda x: base64.b64decode(x.replace(".", "+") + "=" * (-len(x) % 4))
assert hashlib.pbkdf2_hmac("sha256", b"hunter2", d(s), int(n)) == d(h)`, ours)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("python does not verify %q: %v\n%s", ours, err, out)
	}
}

func BenchmarkPasswordCheck(b *testing.B) {
	h, _ := HashPassword("hunter2")
	p, _ := parsePBKDF2(h)
	for b.Loop() {
		p.matches("hunter2")
	}
}

func TestAdminTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "herd test CA")
	certFile, keyFile := ca.files(t, 2)
	base, sec := serveAdmin(t, Config{AdminTLSCert: certFile, AdminTLSKey: keyFile})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	serial := func() int64 {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		client.CloseIdleConnections()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d, want 2", s)
	}
	if code, _ := get(t, http.DefaultClient, "http"+strings.TrimPrefix(base, "https")+"/healthz", "", ""); code == 200 {
		t.Error("plain HTTP answered on a TLS admin listener")
	}
	// Renewal: new files are picked up without a restart.
	c, k := ca.issue(t, 3, false)
	writeAtomic(t, certFile, c)
	writeAtomic(t, keyFile, k)
	sec.cert.mu.Lock()
	sec.cert.checked = time.Time{}
	sec.cert.mu.Unlock()
	if s := serial(); s != 3 {
		t.Errorf("serial %d after renewal, want 3", s)
	}
	// A broken renewal keeps the previous certificate.
	writeAtomic(t, keyFile, []byte("not a key"))
	sec.cert.mu.Lock()
	sec.cert.checked = time.Time{}
	sec.cert.mu.Unlock()
	if s := serial(); s != 3 {
		t.Errorf("serial %d after a broken renewal, want 3", s)
	}
}

func TestAdminMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "herd test CA")
	clients := newTestCA(t, "herd client CA")
	files := map[string][]byte{}
	files["cert.pem"], files["key.pem"] = ca.issue(t, 2, false)
	files["clients.pem"] = clients.pem
	for name, b := range files {
		writeAtomic(t, filepath.Join(dir, name), b)
	}
	base, _ := serveAdmin(t, Config{
		AdminTLSCert: filepath.Join(dir, "cert.pem"), AdminTLSKey: filepath.Join(dir, "key.pem"),
		AdminTLSClientCA: filepath.Join(dir, "clients.pem"),
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, _ := get(t, anon, base+"/metrics", "", ""); code != 0 {
		t.Errorf("a client without a certificate got status %d", code)
	}
	cc, ck := clients.issue(t, 7, true)
	pair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	authed := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	if code, body := get(t, authed, base+"/metrics", "", ""); code != 200 {
		t.Errorf("a client with a certificate: %d %s", code, body)
	}
}
