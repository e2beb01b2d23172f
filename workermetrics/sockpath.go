package workermetrics

import (
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxSockPath is the longest path a unix socket address holds on Linux (108
// bytes with the terminating NUL).
const maxSockPath = 107

// withSockPath calls fn with a path to file in dir that fits in a unix
// socket address: the plain path when it is short enough, else
// /proc/self/fd/N/file, N being a descriptor of dir held open during fn. A
// -metrics-dir deep in the filesystem (a test's temporary directory) makes
// the plain path too long.
func withSockPath(dir, file string, fn func(path string) error) error {
	p := filepath.Join(dir, file)
	if len(p) <= maxSockPath {
		return fn(p)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("workermetrics: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn("/proc/self/fd/" + strconv.Itoa(fd) + "/" + file)
}
