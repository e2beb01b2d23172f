package prefork

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// checkPIDFile fails if path's directory is unusable or path names another live process.
func checkPIDFile(path string, e *env) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return configErr("pidfile %s: directory %s does not exist", path, dir)
	}
	b, err := e.readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return configErr("pidfile %s: %v", path, err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return nil // garbage: stale, will be replaced
	}
	if pid != e.getpid() && processAlive(e, pid) {
		return configErr("pidfile %s: already running as pid %d", path, pid)
	}
	return nil
}

// processAlive reads /proc/PID/stat: a zombie is not alive (it may linger unreaped when PID 1
// reaps lazily).
func processAlive(e *env, pid int) bool {
	b, err := e.readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	st := b[i+2]
	return st != 'Z' && st != 'X' && st != 'x'
}

// writePIDFile writes pid to path atomically (a temporary file renamed over it).
func writePIDFile(path string, pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("prefork: pidfile %s: %w", path, err)
	}
	_, err = fmt.Fprintf(tmp, "%d\n", pid)
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
		return fmt.Errorf("prefork: pidfile %s: %w", path, err)
	}
	return nil
}

// removePIDFile removes path if it still holds pid.
func removePIDFile(path string, pid int) {
	b, err := os.ReadFile(path)
	if err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(pid) {
		os.Remove(path)
	}
}

// WritePIDFile writes this process's pid to path atomically (a temporary file
// renamed over it), refusing a pidfile that names another live process; a
// stale or garbled one is replaced. A Master does this itself for
// Config.PIDFile; WritePIDFile is for programs that serve without one (the
// server's single-process mode). Remove the file with RemovePIDFile.
func WritePIDFile(path string) error {
	e := newStdEnv()
	if err := checkPIDFile(path, e); err != nil {
		return err
	}
	return writePIDFile(path, e.getpid())
}

// RemovePIDFile removes path if it still holds this process's pid.
func RemovePIDFile(path string) { removePIDFile(path, os.Getpid()) }
