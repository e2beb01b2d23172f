package mmapstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Names of the files a writer leaves behind when something goes wrong. Open
// and Check make a file under a temporary name beside its final one,
// "."+name+".tmp-"+digits (see makeFile), and rename it into place; a process
// killed in between leaves it. Open moves a corrupt file aside to
// name+".corrupt-"+digits. Neither ends in ".db", so readers never look at
// them; only RemoveLeftovers removes them.
const (
	tmpInfix     = ".tmp-"
	corruptInfix = ".corrupt-"
)

// RemoveLeftovers removes from dir the files that writers left behind: the
// temporary files of a file being made by a process that was killed before it
// renamed it into place (".counter_0a.db.tmp-123", 64 KiB or more each), and
// the corrupt files that Open moved aside ("counter_0a.db.corrupt-1700000000").
// With id "" it removes those of every file id; otherwise only those of files
// whose id (see ParseFileName) is id, and none of any other writer.
//
// Nothing else is touched: only regular files whose names have exactly those
// forms around a valid metric file name, never a ".db" file, and never a
// temporary file whose maker is still at work (it holds the file's lock). Call
// it for all ids before any writer of dir starts, and for one id after the
// process that wrote with that id has exited and before another starts with
// it. It returns how many files it removed; files that vanish meanwhile are
// not an error.
func RemoveLeftovers(dir, id string) (removed int, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("mmapstore: remove leftovers in %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		fileID, tmp, ok := parseLeftover(name)
		if !ok || (id != "" && fileID != id) || e.Type() != 0 {
			continue // not a leftover of ours, or not a regular file
		}
		path := filepath.Join(dir, name)
		err := removeLeftover(path, tmp)
		switch {
		case err == nil:
			removed++
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrLocked):
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("mmapstore: remove leftovers in %s: %w", dir, err)
	}
	return removed, nil
}

// parseLeftover recognises the name of a temporary or moved-aside file and
// returns the file id of the metric file it belongs to.
func parseLeftover(name string) (id string, tmp, ok bool) {
	base, digits := "", ""
	if rest, isTmp := strings.CutPrefix(name, "."); isTmp {
		i := strings.LastIndex(rest, tmpInfix)
		if i < 0 {
			return "", false, false
		}
		base, digits, tmp = rest[:i], rest[i+len(tmpInfix):], true
	} else {
		i := strings.LastIndex(name, corruptInfix)
		if i < 0 {
			return "", false, false
		}
		base, digits = name[:i], name[i+len(corruptInfix):]
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false, false
	}
	_, _, id, ok = ParseFileName(base)
	return id, tmp, ok
}

// removeLeftover removes path, a regular file. A temporary file is removed
// only if nobody holds its lock (its maker took it right after creating it),
// and while this holds it, so that no maker can take it back meanwhile.
func removeLeftover(path string, tmp bool) error {
	if !tmp {
		return os.Remove(path)
	}
	fd, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fs.ErrNotExist // replaced by something else meanwhile: not ours to remove
	}
	switch err := tryLock(unix.Flock, fd); err {
	case nil:
		return os.Remove(path)
	case ErrLocked:
		return err
	default:
		return fmt.Errorf("%s: %w", path, err)
	}
}
