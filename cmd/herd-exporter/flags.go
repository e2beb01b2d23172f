package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herdhttp/herd/mmapstore"
)

// config is the parsed command line.
type config struct {
	dir       string
	bind      string
	logFormat string

	// filesOwner is -files-owner as given; trusted the uids whose directory and
	// files are read: this process's effective user, root, and filesOwner's.
	filesOwner string
	trusted    []int

	maxFiles     int
	maxFileBytes int64
	maxSeries    int
	maxConns     int
	idleTimeout  time.Duration
}

// Defaults of the flags that are limits. The timeouts that have no flag are
// those of herd's admin listener.
const (
	defaultMaxConns    = 64
	defaultIdleTimeout = 120 * time.Second

	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// usageError is a bad command line: exit status 2, one line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses args; getenv supplies the PROMETHEUS_MULTIPROC_DIR
// default. It checks the values, the directory included, but serves nothing.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flagSet(&c, getenv)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if c.dir == "" {
		return c, usageError{"-dir is required (or set PROMETHEUS_MULTIPROC_DIR)"}
	}
	trusted, err := trustedUIDs(c.filesOwner)
	if err != nil {
		return c, usageError{"-files-owner: " + err.Error()}
	}
	c.trusted = trusted
	if err := checkDir(c.dir, c.trusted); err != nil {
		return c, usageError{"-dir: " + err.Error()}
	}
	if _, _, err := net.SplitHostPort(c.bind); err != nil {
		return c, usageError{"-bind: " + err.Error()}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, usageError{fmt.Sprintf("-log-format: must be \"text\" or \"json\", got %q", c.logFormat)}
	}
	for _, l := range []struct {
		name string
		v    int64
	}{{"max-files", int64(c.maxFiles)}, {"max-file-bytes", c.maxFileBytes}, {"max-series", int64(c.maxSeries)}, {"max-connections", int64(c.maxConns)}} {
		if l.v < 1 {
			return c, usageError{fmt.Sprintf("-%s: must be at least 1, got %d", l.name, l.v)}
		}
	}
	if c.idleTimeout <= 0 {
		return c, usageError{fmt.Sprintf("-idle-timeout: must be positive, got %s", c.idleTimeout)}
	}
	return c, nil
}

// flagSet registers the flags, writing into c.
func flagSet(c *config, getenv func(string) string) *flag.FlagSet {
	dir := getenv("PROMETHEUS_MULTIPROC_DIR")
	if dir == "" {
		dir = getenv("prometheus_multiproc_dir") // client_python before 0.10
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", dir, "prometheus_client multiprocess `directory` to serve (default $PROMETHEUS_MULTIPROC_DIR)")
	fs.StringVar(&c.bind, "bind", defaultBind, "listen `address` of /metrics and /healthz")
	fs.StringVar(&c.logFormat, "log-format", "text", "\"text\" or \"json\"")
	fs.StringVar(&c.filesOwner, "files-owner", "", "`users` (names or uids, comma-separated) who write the directory, trusted besides this process's user and root: their directory and files are read")
	fs.IntVar(&c.maxFiles, "max-files", mmapstore.DefaultMaxFiles, "most metric files one scrape reads; the rest are skipped")
	fs.Int64Var(&c.maxFileBytes, "max-file-bytes", mmapstore.DefaultMaxFileBytes, "most bytes in use of one file; a larger file is skipped")
	fs.IntVar(&c.maxSeries, "max-series", mmapstore.DefaultMaxSeries, "most series entries one scrape reads, over all files; a file that would pass it is skipped")
	fs.IntVar(&c.maxConns, "max-connections", defaultMaxConns, "most open client connections; more are closed at once")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", defaultIdleTimeout, "how long an idle keep-alive connection stays open")
	return fs
}

// trustedUIDs returns this process's effective uid, root's, and those of the
// comma-separated users in list (names or numbers).
func trustedUIDs(list string) ([]int, error) {
	uids := []int{os.Geteuid(), 0}
	for _, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		uid, err := lookupUID(u)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(uids, uid) {
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

func lookupUID(u string) (int, error) {
	if n, err := strconv.Atoi(u); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("bad uid %d", n)
		}
		return n, nil
	}
	usr, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("no user %q", u)
	}
	return strconv.Atoi(usr.Uid)
}
