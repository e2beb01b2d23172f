package server

import (
	"fmt"
	"os"
)

// makeRunDir creates this run's private directory (mode 0700) for metric
// files inside parent, or inside /dev/shm (memory-backed, so scrapes never
// touch a disk) or the temporary directory when parent is empty. herd never
// writes metric files directly into a shared directory: a private directory
// that only this run created cannot hold files planted by someone else.
func makeRunDir(parent string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			parent = "/dev/shm"
		}
	}
	dir, err := os.MkdirTemp(parent, "herd-run-")
	if err != nil {
		return "", fmt.Errorf("-metrics-dir: cannot create a run directory: %w", err)
	}
	// MkdirTemp already uses 0700; be explicit against a permissive umask
	// handling in the future.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("-metrics-dir: %w", err)
	}
	return dir, nil
}
