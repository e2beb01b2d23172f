package integration

// The measurement behind `make upgrade-check`: load over TCP, TLS and a unix socket at
// once while the masters get two HUPs and one USR2, in each listener mode. TLS applies to
// every TCP address of a master, so two bin/hello run side by side: one serving TCP and a
// unix socket, one serving TLS. Every figure goes to the test log on one "upgrade-check"
// line per mode.

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// hupAndWait sends SIGHUP to the master pid and waits until n ready workers, none of them
// one of before, serve.
func (p *upgradable) hupAndWait(pid, n int) {
	p.t.Helper()
	old := readyPIDs(p.readyWorkers(n))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		p.t.Fatal(err)
	}
	testutil.Eventually(p.t, 60*time.Second, func() error {
		ws := p.readyWorkers(n)
		for pid := range readyPIDs(ws) {
			if old[pid] {
				return fmt.Errorf("worker %d of before the HUP still serves: %+v", pid, ws)
			}
		}
		return nil
	})
}

func TestUpgradeEveryListenerKind(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			common := []string{"-workers", "2", "-listener-mode", mode, "-graceful-timeout", "20s"}
			plain := startUpgradableHello(t, append(common, "-bind", "unix:"+sock)...)
			cert, key, pool := selfSigned(t, t.TempDir())
			secure := startUpgradableHello(t, append(common, "-tls-cert", cert, "-tls-key", key)...)
			masters := []*upgradable{plain, secure}
			for _, p := range masters {
				p.readyWorkers(2)
			}
			start := []float64{plain.helloCount(), secure.helloCount()}

			tcp := startLoad(t, plain.app, "/hello", 4, 3*time.Minute)
			uds := unixLoad(t, sock, 4)
			tlsURL := "https" + strings.TrimPrefix(secure.app, "http")
			tlsLoad := startLoadWith(t, tlsURL, "/hello", 4, 3*time.Minute, func(keepAlive bool) *http.Transport {
				conf := &tls.Config{RootCAs: pool}
				if keepAlive {
					return &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
				}
				return &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}
			})
			loads := []*load{tcp, uds, tlsLoad}
			flowing := func() {
				for _, l := range loads {
					l.waitFor(t, 200)
				}
			}
			flowing()

			for range 2 {
				for _, p := range masters {
					p.hupAndWait(p.cmd.Process.Pid, 2)
				}
				flowing()
			}
			before := []float64{plain.helloCount(), secure.helloCount()}
			var status []int
			for _, p := range masters {
				p.upgrade(p.cmd.Process.Pid)
			}
			for _, p := range masters {
				s := p.exitStatus(60 * time.Second)
				if s != 0 {
					t.Errorf("old master exit status %d, want 0", s)
				}
				status = append(status, s)
			}
			after := []float64{plain.helloCount(), secure.helloCount()}
			flowing()
			for _, l := range loads {
				l.check(t)
			}
			final := []float64{plain.helloCount(), secure.helloCount()}

			for i := range masters {
				if after[i] < before[i] {
					t.Errorf("http_requests_total{route=\"/hello\"} went from %v before the upgrade to %v after: a reset", before[i], after[i])
				}
			}
			answered := []int64{tcp.ok.Load() + uds.ok.Load(), tlsLoad.ok.Load()}
			sent := []int64{answered[0] + tcp.failed.Load() + uds.failed.Load(), answered[1] + tlsLoad.failed.Load()}
			for i := range masters {
				if got := final[i] - start[i]; got < float64(answered[i]) || got > float64(sent[i]) {
					t.Errorf("master %d counted %v requests, clients saw %d answered of %d sent", i, got, answered[i], sent[i])
				}
			}
			t.Logf("upgrade-check mode=%s: two HUPs and one USR2 under load; failed/requests: tcp %d/%d tls %d/%d unix %d/%d; "+
				"old master exit status: tcp+unix %d, tls %d; http_requests_total{route=\"/hello\"} tcp+unix master %v before USR2, %v after (%v at the end, %d answered); tls master %v before, %v after (%v at the end, %d answered)",
				mode,
				tcp.failed.Load(), tcp.failed.Load()+tcp.ok.Load(),
				tlsLoad.failed.Load(), tlsLoad.failed.Load()+tlsLoad.ok.Load(),
				uds.failed.Load(), uds.failed.Load()+uds.ok.Load(),
				status[0], status[1],
				before[0], after[0], final[0], answered[0], before[1], after[1], final[1], answered[1])
		})
	}
}
