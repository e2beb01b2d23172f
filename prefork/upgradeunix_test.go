package prefork_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// A binary upgrade with a unix socket among the addresses: the socket goes to the new master
// with the others, its file stays, and only the master that owns it removes it.

// shortSockPath returns a unix socket path in a fresh directory short enough for sun_path.
func shortSockPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(testutil.SockDir(t), "app.sock")
}

// sockInode returns the inode of the socket file at path, or 0 if there is none.
func sockInode(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// sockMode returns the permission bits of the file at path (0 if there is none).
func sockMode(path string) os.FileMode {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	return fi.Mode().Perm()
}

// getUnixInfo asks whichever worker accepts a new connection on the unix socket for its /info.
func getUnixInfo(path string) (workerInfo, error) {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	return fetchInfo(&http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://unix/info")
}

// startUnixLoad is startLoad over the unix socket at path.
func startUnixLoad(path string, clients int) *load {
	return startLoadWith(clients, func() error { _, err := getUnixInfo(path); return err })
}

func TestUpgradeHandsOverTheUnixSocket(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"reuseport", "shared"} {
		t.Run(mode, func(t *testing.T) {
			sock := shortSockPath(t)
			p := startUpgradable(t, masterSpec{Workers: 2, Mode: mode, GracefulTimeout: 20 * time.Second, Unix: sock}, false)
			oldPID := p.cmd.Process.Pid
			p.waitReady(t, 2)
			ino := sockInode(sock)
			if ino == 0 {
				t.Fatalf("no socket file at %s", sock)
			}
			tcp, uds := startLoad(p.addr, 2), startUnixLoad(sock, 2)
			flowing := func(what string) {
				t.Helper()
				a, b := tcp.ok.Load(), uds.ok.Load()
				testutil.EventuallyTrue(t, 20*time.Second, what, func() bool { return tcp.ok.Load() > a+50 && uds.ok.Load() > b+50 })
			}
			flowing("load flowing over TCP and the unix socket")

			newPID := p.upgrade(t, oldPID)
			if code := p.exitCode(t, 60*time.Second); code != 0 {
				t.Errorf("old master exit status %d, want 0", code)
			}
			flowing("load flowing after the old master exited")
			tcp.finish(t)
			uds.finish(t)
			t.Logf("%s: %d requests over TCP, %d over the unix socket, %d failed", mode,
				tcp.ok.Load(), uds.ok.Load(), len(tcp.errs)+len(uds.errs))

			// The old master left the file it handed over; the new master's workers serve it.
			if got := sockInode(sock); got != ino {
				t.Errorf("socket file inode %d after the old master exited, want the same %d", got, ino)
			}
			p.waitReady(t, 2)
			wi, err := getUnixInfo(sock)
			if err != nil || wi.PPID != newPID {
				t.Errorf("unix socket after the upgrade: worker %+v, %v; want a worker of the new master %d", wi, err, newPID)
			}
			if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over true took-over false\n", oldPID)) {
				t.Errorf("the old master's Run ended without HandedOver:\n%s", p.stdout())
			}

			// The new master owns the file now: it removes it at its exit.
			syscall.Kill(newPID, syscall.SIGTERM)
			testutil.EventuallyTrue(t, 30*time.Second, "the new master gone", func() bool { return gone(newPID) })
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file after the new master exited: %v, want it removed", err)
			}
		})
	}
}

// A new master that never becomes ready is stopped; it leaves the unix socket's file,
// which the old master goes on serving and removes at its own exit.
func TestFailedUpgradeLeavesTheUnixSocket(t *testing.T) {
	t.Parallel()
	sock := shortSockPath(t)
	gate := filepath.Join(t.TempDir(), "never")
	p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 3 * time.Second, UpgradeGate: gate, Unix: sock}, false)
	oldPID := p.cmd.Process.Pid
	before := p.waitReady(t, 2)
	ino := sockInode(sock)
	uds := startUnixLoad(sock, 2)
	testutil.EventuallyTrue(t, 20*time.Second, "load flowing", func() bool { return uds.ok.Load() > 50 })

	newPID := p.failedUpgrade(t, oldPID)
	if !gone(newPID) {
		t.Errorf("failed new master pid %d still running", newPID)
	}
	if got := sockInode(sock); got != ino {
		t.Errorf("socket file inode %d after the failed upgrade, want the same %d", got, ino)
	}
	served := uds.ok.Load()
	testutil.EventuallyTrue(t, 20*time.Second, "load flowing after the failure", func() bool { return uds.ok.Load() > served+50 })
	uds.finish(t)
	now := p.waitReady(t, 2)
	if now[0].PID != before[0].PID || now[1].PID != before[1].PID {
		t.Errorf("workers %+v after the failed upgrade, want %+v", now, before)
	}

	// The old master still owns the file: it removes it at its exit.
	p.stopOwner(t, oldPID, sock)
}

// The old master's upgrade timeout fires just as the new master reports ready: the old
// master gives up and stops the new one, which must leave the socket file and the pidfile
// it inherited to the old master, still serving, that owns them.
func TestUpgradeTimeoutAtReadyLeavesTheFilesToTheOldMaster(t *testing.T) {
	t.Parallel()
	sock := shortSockPath(t)
	p := startUpgradable(t, masterSpec{
		Workers: 2, GracefulTimeout: 20 * time.Second, Unix: sock,
		UpgradeTimeoutAtReady: true, UpgradeSocketMode: 0o600,
	}, false)
	oldPID := p.cmd.Process.Pid
	before := p.waitReady(t, 2)
	ino := sockInode(sock)
	if ino == 0 {
		t.Fatalf("no socket file at %s", sock)
	}

	newPID := p.failedUpgrade(t, oldPID)
	testutil.EventuallyTrue(t, 10*time.Second, "the new master's exit line", func() bool {
		return strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d ", newPID))
	})
	if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over false took-over false\n", newPID)) {
		t.Errorf("the stopped new master reports that it took over:\n%s", p.stdout())
	}
	if got := sockInode(sock); got != ino {
		t.Errorf("socket file inode %d after the new master was stopped, want the same %d (the old master serves it)", got, ino)
	}
	if got := sockMode(sock); got != 0o660 {
		t.Errorf("socket file mode %#o after the new master was stopped, want the old master's %#o", got, 0o660)
	}
	if got := p.pidfilePID(); got != oldPID {
		t.Errorf("pidfile names pid %d after the new master was stopped, want the old master %d", got, oldPID)
	}
	wi, err := getUnixInfo(sock)
	if err != nil || wi.PPID != oldPID {
		t.Errorf("unix socket after the failed upgrade: worker %+v, %v; want a worker of the old master %d", wi, err, oldPID)
	}
	now := p.waitReady(t, 2)
	if now[0].PID != before[0].PID || now[1].PID != before[1].PID {
		t.Errorf("workers %+v after the failed upgrade, want %+v", now, before)
	}

	p.stopOwner(t, oldPID, sock)
}

// A new master that takes over sets its own socket mode on the socket file it inherited:
// a mode changed with the upgrade takes effect, on the same socket.
func TestUpgradeAppliesTheNewSocketMode(t *testing.T) {
	t.Parallel()
	sock := shortSockPath(t)
	p := startUpgradable(t, masterSpec{Workers: 1, GracefulTimeout: 20 * time.Second, Unix: sock, UpgradeSocketMode: 0o602}, false)
	oldPID := p.cmd.Process.Pid
	p.waitReady(t, 1)
	ino := sockInode(sock)
	if got := sockMode(sock); ino == 0 || got != 0o660 {
		t.Fatalf("socket file inode %d mode %#o before the upgrade, want a socket with mode 0660", ino, got)
	}
	newPID := p.upgrade(t, oldPID)
	p.waitLog(t, "upgrade: took over from the old master")
	if got := sockMode(sock); got != 0o602 {
		t.Errorf("socket file mode %#o after the new master took over, want 0602", got)
	}
	if got := sockInode(sock); got != ino {
		t.Errorf("socket file inode %d after the upgrade, want the same %d", got, ino)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Errorf("old master exit status %d, want 0", code)
	}
	wi, err := getUnixInfo(sock)
	if err != nil || wi.PPID != newPID {
		t.Errorf("unix socket after the upgrade: worker %+v, %v; want a worker of the new master %d", wi, err, newPID)
	}
}
