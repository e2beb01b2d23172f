package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The metrics directory policy. herd never writes a metric file directly
// into -metrics-dir: it creates a private run directory there (mode 0700,
// owned by the master's user) and every file of the run lives inside it.
// Whoever can rename or replace an entry of -metrics-dir, or of any
// directory above it, could swap that run directory (or -metrics-dir
// itself) for one of their own, so:
//
//   - -metrics-dir must be a real directory, not a symbolic link (the last
//     path component is checked with lstat; give the resolved path
//     instead);
//   - it, and every directory its path is looked up through (each
//     ancestor, and the targets of symbolic links on the way, resolved as
//     the kernel does), must be owned by the master's effective user or by
//     root;
//   - and writable by nobody else, unless it has the sticky bit, which
//     limits renaming and removing an entry to that entry's owner (as /tmp
//     and /dev/shm have: mode 1777).
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
	if err := safeDir(fi); err != nil {
		return fmt.Errorf("-metrics-dir: %s %v", dir, err)
	}
	return checkAncestors(dir)
}

// safeDir applies the owner and mode rules of the policy to a directory's
// information; the error reads after the directory's name.
func safeDir(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("has no readable owner")
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("is owned by uid %d, not by this user (uid %d) or root", st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("is writable by users other than its owner (mode %04o) and has no sticky bit; chmod go-w or +t it", fi.Mode().Perm())
	}
	return nil
}

// maxSymlinkHops bounds the symbolic links followed while checking a path,
// as the kernel's limit (40) does.
const maxSymlinkHops = 40

// checkAncestors applies safeDir to every directory through which dir's
// path is looked up: from / down to dir's parent, following symbolic links
// as the kernel does (a link's target is looked up in its turn, from / if
// it is absolute). Each directory is checked before any name is looked up
// in it, so every entry on the way can be changed only by root or this
// user.
func checkAncestors(dir string) error {
	path := dir
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("-metrics-dir: %w", err)
		}
		path = wd + "/" + path
	}
	todo := strings.Split(strings.TrimRight(path, "/"), "/")
	todo = todo[:len(todo)-1] // dir itself: checked by the caller, with lstat
	cur := "/"
	hops := 0
	for checked := ""; ; {
		if cur != checked {
			fi, err := os.Stat(cur)
			if err != nil {
				return fmt.Errorf("-metrics-dir: %w", err)
			}
			if err := safeDir(fi); err != nil {
				return fmt.Errorf("-metrics-dir: %s is inside %s, which %v", dir, cur, err)
			}
			checked = cur
		}
		if len(todo) == 0 {
			return nil
		}
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return fmt.Errorf("-metrics-dir: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > maxSymlinkHops {
				return fmt.Errorf("-metrics-dir: %s: too many levels of symbolic links", dir)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("-metrics-dir: %w", err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !fi.IsDir() {
			return fmt.Errorf("-metrics-dir: %s is not a directory", next)
		}
		cur = next
	}
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
