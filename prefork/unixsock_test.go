package prefork_test

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/herdhttp/herd/prefork"
)

// A unix socket file: created with the mode asked for, refused while a
// server listens on it, replaced when its server is gone, removed at close.
func TestUnixSocketLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	m, err := prefork.NewMaster(prefork.Config{Workers: 2, Addrs: []string{"127.0.0.1:0", prefork.UnixPrefix + path},
		SocketMode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	as := m.Addrs()
	if len(as) != 2 || as[0].Network() != "tcp" || as[1].String() != path || as[1].Network() != "unix" {
		t.Errorf("Addrs = %v, want the TCP address, then %s", as, path)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v %v, want a socket with mode 0600", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the master's socket does not listen: %v", err)
	}
	c.Close()

	// A second server on the same path is refused while the first listens.
	_, err = prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{prefork.UnixPrefix + path}})
	if err == nil || !strings.Contains(err.Error(), "listen unix "+path+": in use: a server is listening on it") {
		t.Errorf("second master on a live socket: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the live socket's file was removed by the refused master: %v", err)
	}
	m.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Close: %v", err)
	}

	// A stale socket file (its server died without removing it) is replaced.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd) // bound, never listened, closed: what a crash leaves
	l, err := prefork.ListenUnix(path, 0)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != prefork.DefaultSocketMode {
		t.Errorf("mode %v (%v), want %v", fi.Mode().Perm(), err, prefork.DefaultSocketMode)
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("ListenUnix's file left after Close: %v", err)
	}

	// A file that is not a socket is never replaced.
	os.WriteFile(path, []byte("data"), 0o600)
	if _, err := prefork.ListenUnix(path, 0); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Errorf("regular file at the path: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("the regular file was touched: %q", b)
	}
}

func TestUnixSocketAddressChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"unix:", "no path"},
		{"unix:/" + strings.Repeat("x", 120), "path longer than 107 bytes"},
	} {
		_, err := prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{tc.addr}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.20s: %v, want %q", tc.addr, err, tc.want)
		}
	}
	if err := (prefork.Config{Workers: 1, SocketMode: 0o4755}).Check(); err == nil {
		t.Error("setuid socket mode accepted")
	}
}
