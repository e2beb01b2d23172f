package server

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// A master's pidfile is prefork's (Config.PIDFile). These are the same
// rules for single-process mode, where there is no prefork master.

// writePIDFile writes this process's pid to path atomically, refusing a
// pidfile that names another live process.
func writePIDFile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
		if err == nil && pid > 0 && pid != os.Getpid() && pidAlive(pid) {
			return fmt.Errorf("-pidfile: %s: already running as pid %d", path, pid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("-pidfile: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("-pidfile: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("-pidfile: %w", err)
	}
	return nil
}

// removePIDFile removes path if it still holds this process's pid.
func removePIDFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

// pidAlive reads /proc/PID/stat: a zombie is not alive (PID 1 may reap
// lazily).
func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st != 'Z' && st != 'X' && st != 'x'
}
