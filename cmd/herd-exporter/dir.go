package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// checkDir reports why dir cannot be served, or nil. The rules are those of
// herd's master for its -metrics-dir, so that a user who may not write into
// the directory cannot make the exporter serve numbers of their choosing:
//
//   - a real directory, not a symbolic link (give the resolved path);
//   - owned by a trusted user (this process's, root, or one -files-owner
//     names);
//   - writable by nobody else, unless it has the sticky bit (mode 1777, as
//     /tmp and /dev/shm have), which lets others add files but not rename or
//     remove the owner's: their files are then refused one by one, by owner.
//
// The directories above dir are not checked.
func checkDir(dir string, trusted []int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return fmt.Errorf("%s is a symbolic link (to %s); give a real directory", dir, real)
		}
		return fmt.Errorf("%s is a symbolic link; give a real directory", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", dir)
	}
	if !slices.Contains(trusted, int(st.Uid)) {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d) or root; if that user writes the files, name it with -files-owner", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("%s is writable by users other than its owner (mode %04o) and has no sticky bit; chmod go-w or +t it", dir, fi.Mode().Perm())
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	return nil
}
