package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The metrics directory policy. herd never writes a metric file directly
// into -metrics-dir: it creates a private run directory there (mode 0700,
// owned by the master's user) and every file of the run lives inside it.
// Whoever can rename or replace entries of -metrics-dir could swap that run
// directory for one of their own, so -metrics-dir itself must be:
//
//   - a real directory, not a symbolic link (the last path component is
//     checked with lstat; give the resolved path instead);
//   - owned by the master's effective user or by root;
//   - writable by nobody else, unless it has the sticky bit, which limits
//     renaming and removing an entry to that entry's owner (as /tmp and
//     /dev/shm have: mode 1777).
//
// Anything else is refused before anything starts (exit status 2, one line).

// defaultMetricsParent is where the run directory goes when -metrics-dir is
// empty: /dev/shm (memory-backed: scrapes and writes never touch a disk)
// when it exists, else the system's temporary directory.
func defaultMetricsParent() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// checkMetricsParent applies the policy above to dir.
func checkMetricsParent(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("-metrics-dir: %s does not exist", dir)
		}
		return fmt.Errorf("-metrics-dir: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return fmt.Errorf("-metrics-dir: %s is a symbolic link (to %s); give a real directory", dir, real)
		}
		return fmt.Errorf("-metrics-dir: %s is a symbolic link; give a real directory", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("-metrics-dir: %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("-metrics-dir: %s: cannot read its owner", dir)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("-metrics-dir: %s is owned by uid %d, not by this user (uid %d) or root", dir, st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("-metrics-dir: %s is writable by users other than its owner (mode %04o) and has no sticky bit; chmod go-w or +t it", dir, fi.Mode().Perm())
	}
	return nil
}

// makeRunDir creates this run's private directory (mode 0700) for metric
// files inside parent (default: defaultMetricsParent), after checking
// parent against the policy above. A private directory that only this run
// created cannot hold files planted by someone else. The caller removes it
// (and only it) at exit.
func makeRunDir(parent string) (string, error) {
	if parent == "" {
		parent = defaultMetricsParent()
	}
	if err := checkMetricsParent(parent); err != nil {
		return "", err
	}
	// MkdirTemp uses mkdir(2), which never follows a symbolic link in the
	// last component, with a random name and mode 0700 (minus umask).
	dir, err := os.MkdirTemp(parent, "herd-run-")
	if err != nil {
		return "", fmt.Errorf("-metrics-dir: cannot create a run directory: %w", err)
	}
	// Be explicit: the mode must not depend on the umask, and the result
	// must be the directory we made (not something renamed into place).
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("-metrics-dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		os.Remove(dir)
		return "", fmt.Errorf("-metrics-dir: run directory %s changed under us", dir)
	}
	return dir, nil
}
