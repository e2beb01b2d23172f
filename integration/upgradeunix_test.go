package integration

// Binary upgrades of a bin/hello serving a unix socket beside its TCP address: the socket
// file stays through USR2 and serves, the new master owns it afterwards, and a new master
// that fails leaves it to the old one.

import (
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

// socketFileInode is the inode of the socket file at path (0: none).
func socketFileInode(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// unixLoad is startLoad over the unix socket at path.
func unixLoad(t *testing.T, path string, clients int) *load {
	return startLoadWith(t, "http://herd", "/hello", clients, 2*time.Minute, func(keepAlive bool) *http.Transport {
		return unixTransport(path, keepAlive)
	})
}

func TestUpgradeWithAUnixSocketUnderLoad(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			p := startUpgradableHello(t, "-workers", "2", "-listener-mode", mode, "-graceful-timeout", "20s", "-bind", "unix:"+sock)
			oldPID := p.cmd.Process.Pid
			p.readyWorkers(2)
			ino := socketFileInode(sock)
			if ino == 0 {
				t.Fatalf("no socket file at %s", sock)
			}
			before := p.helloCount()
			tcp, uds := startLoad(t, p.app, "/hello", 4, 2*time.Minute), unixLoad(t, sock, 4)
			flowing := func() {
				tcp.waitFor(t, 200)
				uds.waitFor(t, 200)
			}
			flowing()

			newPID := p.upgrade(oldPID)
			status := p.exitStatus(60 * time.Second)
			if status != 0 {
				t.Errorf("old master exit status %d, want 0", status)
			}
			// After the old master's exit the socket file is still there and serves.
			if got := socketFileInode(sock); got != ino {
				t.Errorf("socket file inode %d after the old master exited, want the same %d", got, ino)
			}
			flowing()
			okTCP, okUnix := tcp.check(t), uds.check(t)
			after := p.helloCount()
			t.Logf("USR2 under load (%s): %d requests over TCP, %d over the unix socket, %d failed; old master exit status %d; http_requests_total{route=\"/hello\"} %v before the load, %v after",
				mode, okTCP, okUnix, tcp.failed.Load()+uds.failed.Load(), status, before, after)
			if sent := okTCP + okUnix + tcp.failed.Load() + uds.failed.Load(); after < before+float64(okTCP+okUnix) || after > before+float64(sent) {
				t.Errorf("http_requests_total{route=\"/hello\"}: %v before, %v after; clients saw %d succeed, %d sent", before, after, okTCP+okUnix, sent)
			}
			code, body := getVia(t, unixTransport(sock, false), "http://herd/hello")
			if code != 200 || !strings.Contains(body, "hello") {
				t.Errorf("GET /hello over the unix socket after the upgrade: %d %q", code, body)
			}
			for _, w := range p.readyWorkers(2) {
				if parentPID(w.PID) != newPID {
					t.Errorf("worker %+v: want a worker of the new master %d", w, newPID)
				}
			}

			// The new master owns the socket file now and removes it at its exit.
			syscall.Kill(newPID, syscall.SIGTERM)
			testutil.Eventually(t, 30*time.Second, func() error {
				if alive(newPID) {
					return fmt.Errorf("new master %d still running", newPID)
				}
				return nil
			})
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file after the new master exited: %v, want it removed", err)
			}
		})
	}
}

// A new binary whose application cannot start (its workers never become ready): the new
// master adopts the unix socket, exits, and leaves the file to the old master, which serves
// on without a failed request.
func TestFailedUpgradeWithAUnixSocketKeepsServing(t *testing.T) {
	sock := filepath.Join(testutil.SockDir(t), "app.sock")
	p := startUpgradableHello(t, "-workers", "2", "-graceful-timeout", "20s", "-bind", "unix:"+sock)
	oldPID := p.cmd.Process.Pid
	old := p.readyWorkers(2)
	ino := socketFileInode(sock)
	uds := unixLoad(t, sock, 4)
	uds.waitFor(t, 200)

	missing := filepath.Join(t.TempDir(), "no-such-greeting")
	installBytes(t, p.bin, strings.NewReader(fmt.Sprintf("#!/bin/sh\nexec %q \"$@\" -greeting-file %q\n", helloBin, missing)))
	syscall.Kill(oldPID, syscall.SIGUSR2)
	p.waitLog("upgrade failed: the new master exited with status 3 before it was ready; this master keeps serving")
	if got := socketFileInode(sock); got != ino {
		t.Errorf("socket file inode %d after the failed upgrade, want the same %d", got, ino)
	}
	uds.waitFor(t, 200)
	ok := uds.check(t)
	t.Logf("failed USR2 under load over the unix socket: %d requests, %d failed", ok, uds.failed.Load())
	for i, w := range p.readyWorkers(2) {
		if w.PID != old[i].PID {
			t.Errorf("worker %+v after the failed upgrade, want %+v untouched", w, old[i])
		}
	}
	if pid := p.pidfilePID(); pid != oldPID {
		t.Errorf("pidfile names %d after the failed upgrade, want the old master %d", pid, oldPID)
	}

	// The old master still owns the file and removes it at its exit.
	syscall.Kill(oldPID, syscall.SIGTERM)
	if status := p.exitStatus(30 * time.Second); status != 0 {
		t.Errorf("old master exit status %d after SIGTERM, want 0", status)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after the old master exited: %v, want it removed", err)
	}
}

// A master whose only address is a unix socket upgrades as well, in either listener mode
// (its slots have no TCP socket of their own).
func TestUpgradeWithOnlyAUnixSocket(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			bin := filepath.Join(dir, "hello")
			installBinary(t, bin, helloBin)
			pidfile := filepath.Join(dir, "hello.pid")
			p := startUpgradable(t, exec.Command(bin, "-bind", "unix:"+sock, "-metrics-bind", "127.0.0.1:0",
				"-metrics-dir", t.TempDir(), "-pidfile", pidfile, "-workers", "2", "-listener-mode", mode,
				"-graceful-timeout", "20s"), bin, pidfile)
			oldPID := p.cmd.Process.Pid
			p.readyWorkers(2)
			uds := unixLoad(t, sock, 4)
			uds.waitFor(t, 200)
			newPID := p.upgrade(oldPID)
			if status := p.exitStatus(60 * time.Second); status != 0 {
				t.Errorf("old master exit status %d, want 0", status)
			}
			uds.waitFor(t, 200)
			ok := uds.check(t)
			t.Logf("USR2 under load (%s, unix socket only): %d requests, %d failed", mode, ok, uds.failed.Load())
			for _, w := range p.readyWorkers(2) {
				if parentPID(w.PID) != newPID {
					t.Errorf("worker %+v: want a worker of the new master %d", w, newPID)
				}
			}
		})
	}
}
