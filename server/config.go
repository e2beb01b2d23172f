package server

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"
)

// Config is the whole configuration of a herd program. The zero value works:
// one process (no fork) serving 127.0.0.1:8080, with its admin endpoints on
// 127.0.0.1:9090. DefaultConfig returns the defaults the command-line flags
// use, with one worker per CPU.
type Config struct {
	// Bind is the application's listen address; default "127.0.0.1:8080".
	Bind string
	// Workers is the number of worker processes; 0 serves in this process
	// without forking (single-process mode).
	Workers int
	// MetricsBind is the master's admin listener (/metrics, /healthz,
	// /workers); default "127.0.0.1:9090". "off" disables it.
	MetricsBind string
	// MetricsDir is the directory in which herd creates its private run
	// directory (mode 0700) for this run's metric files; default /dev/shm
	// when it exists, else the system's temporary directory.
	MetricsDir string
	// ListenerMode is "reuseport" (default: one SO_REUSEPORT socket per
	// worker slot, kept open by the master) or "shared" (one socket).
	ListenerMode string
	// GracefulTimeout bounds a worker's drain on stop; default 30s.
	GracefulTimeout time.Duration
	// Timeout kills a worker whose heartbeat is silent this long; default 30s.
	Timeout time.Duration
	// MaxRequests recycles a worker after it served this many requests;
	// 0 (default) never.
	MaxRequests int
	// MaxRequestsJitter adds a random 0..MaxRequestsJitter to each worker's
	// MaxRequests so that workers do not all restart at once.
	MaxRequestsJitter int
	// LogFormat is "text" (default) or "json".
	LogFormat string
}

// DefaultConfig returns the defaults of the command-line flags: one worker
// per CPU, everything else as in the zero Config.
func DefaultConfig() Config {
	return Config{Workers: runtime.NumCPU()}
}

const (
	defaultBind            = "127.0.0.1:8080"
	defaultMetricsBind     = "127.0.0.1:9090"
	defaultGracefulTimeout = 30 * time.Second
	defaultTimeout         = 30 * time.Second
)

// withDefaults fills in the documented defaults of zero fields.
func (c Config) withDefaults() Config {
	if c.Bind == "" {
		c.Bind = defaultBind
	}
	if c.MetricsBind == "" {
		c.MetricsBind = defaultMetricsBind
	}
	if c.ListenerMode == "" {
		c.ListenerMode = "reuseport"
	}
	if c.GracefulTimeout == 0 {
		c.GracefulTimeout = defaultGracefulTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	return c
}

// RegisterFlags registers the configuration's flags on fs, with c's current
// values as their defaults. Flags write into c when fs is parsed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := c.withDefaults()
	*c = d
	fs.StringVar(&c.Bind, "bind", d.Bind, "application listen `address`")
	fs.Var(workersFlag{&c.Workers}, "workers", "number of worker processes (0: serve in one process, no fork)")
	fs.StringVar(&c.MetricsBind, "metrics-bind", d.MetricsBind, "admin listener `address` (/metrics, /healthz, /workers), or \"off\"")
	fs.StringVar(&c.MetricsDir, "metrics-dir", d.MetricsDir, "`dir`ectory for this run's private metric files (default /dev/shm or $TMPDIR)")
	fs.StringVar(&c.ListenerMode, "listener-mode", d.ListenerMode, "\"reuseport\" (a socket per worker) or \"shared\" (one socket)")
	fs.DurationVar(&c.GracefulTimeout, "graceful-timeout", d.GracefulTimeout, "how long a stopping worker may drain")
	fs.DurationVar(&c.Timeout, "timeout", d.Timeout, "kill a worker whose heartbeat is silent this long")
	fs.Var(nonNegativeFlag{&c.MaxRequests}, "max-requests", "recycle a worker after this many requests (0: never)")
	fs.Var(nonNegativeFlag{&c.MaxRequestsJitter}, "max-requests-jitter", "random extra requests added to -max-requests per worker")
	fs.StringVar(&c.LogFormat, "log-format", d.LogFormat, "\"text\" or \"json\"")
}

// workersFlag parses a non-negative worker count.
type workersFlag struct{ p *int }

func (f workersFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(*f.p)
}

func (f workersFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	if n < 0 {
		return fmt.Errorf("must be 0 or more, got %d", n)
	}
	*f.p = n
	return nil
}

type nonNegativeFlag struct{ p *int }

func (f nonNegativeFlag) String() string { return workersFlag(f).String() }
func (f nonNegativeFlag) Set(s string) error {
	return workersFlag(f).Set(s)
}

// Validate checks the configuration without side effects other than
// inspecting the metrics directory. Each error is one line naming the
// problem.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Workers < 0 {
		return fmt.Errorf("-workers: must be 0 or more, got %d", c.Workers)
	}
	if err := checkAddr("-bind", c.Bind); err != nil {
		return err
	}
	if c.MetricsBind != "off" {
		if err := checkAddr("-metrics-bind", c.MetricsBind); err != nil {
			return err
		}
	}
	if c.ListenerMode != "reuseport" && c.ListenerMode != "shared" {
		return fmt.Errorf("-listener-mode: must be \"reuseport\" or \"shared\", got %q", c.ListenerMode)
	}
	if c.GracefulTimeout < 0 {
		return fmt.Errorf("-graceful-timeout: must not be negative, got %s", c.GracefulTimeout)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("-timeout: must not be negative, got %s", c.Timeout)
	}
	if c.MaxRequests < 0 || c.MaxRequestsJitter < 0 {
		return errors.New("-max-requests and -max-requests-jitter must not be negative")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format: must be \"text\" or \"json\", got %q", c.LogFormat)
	}
	if c.MetricsDir != "" {
		fi, err := os.Stat(c.MetricsDir)
		if err != nil {
			return fmt.Errorf("-metrics-dir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("-metrics-dir: %s is not a directory", c.MetricsDir)
		}
	}
	return nil
}

func checkAddr(flagName, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		// Names other than localhost would need a resolver at start-up;
		// listen addresses are IPs in practice.
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%s: unknown host %q", flagName, host)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: bad port %q", flagName, port)
	}
	return nil
}
