package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mkdir makes the directory name under base with exactly mode (the umask
// does not apply) and returns its path.
func Mkdir(t testing.TB, base, name string, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(base, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// SockDir returns a fresh directory whose path is short enough for unix
// socket addresses (108 bytes; t.TempDir's paths can be longer), removed at
// cleanup.
func SockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "herd-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// MountTmpfs mounts a tmpfs of the given size (a "size=" value: "16k",
// "1m") with the given mode on a fresh directory, and unmounts it at
// cleanup, after the processes using it stopped (cleanups run last-in
// first-out). It needs root, as CI has: without, the test fails.
func MountTmpfs(t testing.TB, size string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	opts := fmt.Sprintf("size=%s,mode=%04o", size, mode.Perm())
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount a %s tmpfs (needs root): %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
