package integration

// The application over TLS and HTTP/2 through bin/hello, checked with curl
// (as a user would) and Go clients: HTTP/2 by ALPN, -http2=false, TLS 1.2
// at least, a renewed certificate picked up without a restart, cleartext
// HTTP/2 by prior knowledge and by Upgrade, unix sockets staying plain, and
// no request lost over TLS through restarts and scaling.

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// curl runs curl with args and returns its output and exit status.
func curl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("curl: %v", err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// httpsURL is p's application address over https.
func (p *proc) httpsURL() string { return "https" + strings.TrimPrefix(p.app, "http") }

func TestTLSAndHTTP2WithCurl(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key, _ := selfSigned(t, dir)
	sock := filepath.Join(testutil.SockDir(t), "app.sock")
	p := startHello(t, "-workers", "2", "-tls-cert", cert, "-tls-key", key, "-bind", "unix:"+sock)
	ws := p.waitReady(2)
	url := p.httpsURL() + "/hello"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http2"}, `{"msg":"hello"}` + "\n2"},
		{[]string{"--http1.1"}, `{"msg":"hello"}` + "\n1.1"},
	} {
		out, code := curl(t, append(tc.args, "--cacert", cert, "-w", "%{http_version}", url)...)
		if code != 0 || out != tc.want {
			t.Errorf("curl %v: status %d, %q; want %q", tc.args, code, out, tc.want)
		}
	}
	if out, code := curl(t, "--cacert", cert, "--tlsv1.0", "--tls-max", "1.1", url); code == 0 {
		t.Errorf("a TLS 1.1 client was served: %q", out)
	}
	if out, code := curl(t, "--unix-socket", sock, "-w", " %{http_version}", "http://herd/hello"); code != 0 || out != `{"msg":"hello"}`+"\n 1.1" {
		t.Errorf("the unix socket is not plain HTTP: status %d, %q", code, out)
	}

	// Renewal: new files in place; new connections get the new certificate
	// (curl trusts only the new one), and no worker was restarted.
	newDir := t.TempDir()
	cert2, key2, _ := selfSigned(t, newDir)
	for from, to := range map[string]string{key2: key, cert2: cert} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	newCA := filepath.Join(newDir, "ca.pem")
	b, _ := os.ReadFile(cert)
	os.WriteFile(newCA, b, 0o600)
	testutil.Eventually(t, 20*time.Second, func() error {
		if out, code := curl(t, "--http2", "--cacert", newCA, url); code != 0 {
			return fmt.Errorf("curl trusting only the renewed certificate: status %d %q", code, out)
		}
		return nil
	})
	for i, w := range p.waitReady(2) {
		if w.PID != ws[i].PID {
			t.Errorf("worker %d restarted (pid %d -> %d) for a certificate renewal", i, ws[i].PID, w.PID)
		}
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

func TestHTTP2OffWithCurl(t *testing.T) {
	t.Parallel()
	cert, key, _ := selfSigned(t, t.TempDir())
	p := startHello(t, "-workers", "1", "-tls-cert", cert, "-tls-key", key, "-http2=false")
	p.waitReady(1)
	if out, code := curl(t, "--http2", "--cacert", cert, "-o", "/dev/null", "-w", "%{http_version}", p.httpsURL()+"/hello"); code != 0 || out != "1.1" {
		t.Errorf("curl --http2 with -http2=false: status %d, %q; want 1.1", code, out)
	}
}

// -h2c: cleartext HTTP/2 by Upgrade and by prior knowledge, on TCP and on a
// unix socket, counted and logged like any request.
func TestH2CWithCurl(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(testutil.SockDir(t), "app.sock")
	alog := filepath.Join(t.TempDir(), "access.log")
	p := startHello(t, "-workers", "2", "-h2c", "-bind", "unix:"+sock, "-access-log", alog)
	p.waitReady(2)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http2", p.app + "/users/upgrade"}, `{"id":"upgrade"}` + "\n2"}, // Upgrade: h2c
		{[]string{"--http2-prior-knowledge", p.app + "/users/prior"}, `{"id":"prior"}` + "\n2"},
		{[]string{"--http2-prior-knowledge", "--unix-socket", sock, "http://herd/users/unix"}, `{"id":"unix"}` + "\n2"},
		{[]string{p.app + "/users/plain"}, `{"id":"plain"}` + "\n1.1"},
	} {
		out, code := curl(t, append([]string{"-w", "%{http_version}"}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("curl %v: status %d, %q; want %q", tc.args, code, out, tc.want)
		}
	}
	if v, _ := value(p.scrape(), "http_requests_total", map[string]string{"route": "/users/{id}", "code": "200"}); v != 4 {
		t.Errorf("http_requests_total{route=/users/{id}} = %v, want 4", v)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		log := strings.Join(lines(t, alog), "\n")
		for _, want := range []string{`"GET /users/upgrade HTTP/2.0" 200`, `"GET /users/prior HTTP/2.0" 200`, `"GET /users/plain HTTP/1.1" 200`} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("access log has no %s:\n%s", want, log)
			}
		}
		return nil
	})
}

// Two rolling restarts, a worker added and one removed, under load over
// TLS (HTTP/2 on kept-alive connections, HTTP/1.1 on fresh ones): not one
// request fails.
func TestTLSLosesNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			cert, key, pool := selfSigned(t, t.TempDir())
			p := startHello(t, "-workers", "2", "-listener-mode", mode, "-tls-cert", cert, "-tls-key", key)
			p.waitReady(2)
			l := startLoadWith(t, p.httpsURL(), "/hello", 8, 2*time.Minute, func(keepAlive bool) *http.Transport {
				conf := &tls.Config{RootCAs: pool}
				if keepAlive {
					return &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
				}
				return &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}
			})
			l.waitFor(t, 200)
			for round := 1; round <= 2; round++ {
				p.reload(t, 2, 30*time.Second, fmt.Sprintf("HUP %d", round))
				l.waitFor(t, 200)
			}
			p.cmd.Process.Signal(syscall.SIGTTIN)
			p.waitWorkers(30*time.Second, "TTIN adds a worker", func(ws []workerInfo) bool { return len(readyPIDs(ws)) == 3 })
			l.waitFor(t, 200)
			p.cmd.Process.Signal(syscall.SIGTTOU)
			p.waitWorkers(30*time.Second, "TTOU removes a worker", func(ws []workerInfo) bool { return len(ws) == 2 && len(readyPIDs(ws)) == 2 })
			l.waitFor(t, 200)
			ok := l.check(t)
			t.Logf("%s: %d requests over TLS, %d failed", mode, ok, l.failed.Load())
			p.checkCountEquals(t, ok)
		})
	}
}
