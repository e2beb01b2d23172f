package server

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
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

	// ReadHeaderTimeout bounds how long a worker waits for a request's
	// headers, from the moment the connection is ready to read one: the
	// defence against slow-header (slowloris) clients. Default 10s;
	// negative: none.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body. Default
	// 60s; negative: none (a handler reading the body of a client that
	// sends one byte a minute then waits forever).
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response. Default: none (zero or negative), because it
	// also cuts off slow handlers and streamed responses without telling
	// them; set it, or a per-request deadline with http.ResponseController,
	// when responses are large and clients untrusted.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has been idle this
	// long. Default 120s; negative: none.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's headers (request line
	// included); larger requests get 431 Request Header Fields Too Large.
	// Default 64 KiB (net/http adds 4 KiB of slack).
	MaxHeaderBytes int

	// AdminTLSCert and AdminTLSKey, both set, serve the admin listener
	// over TLS (1.2 or later) with this PEM certificate chain and key. The
	// files are read again when they change (certificate rotation needs no
	// restart). Default: plain HTTP.
	AdminTLSCert, AdminTLSKey string
	// AdminTLSClientCA, with TLS, requires every admin client to present a
	// certificate signed by one of these PEM CAs (mutual TLS).
	AdminTLSClientCA string
	// AdminBasicAuthFile requires HTTP basic authentication on /metrics and
	// /workers (not /healthz): one "user:hash" line per user, hashes in
	// passlib's "$pbkdf2-sha256$rounds$salt$checksum" form (see
	// docs/reliability.md). The file is read again when it changes.
	AdminBasicAuthFile string

	// PIDFile, when set, is written with the master's pid (atomically) and
	// removed at exit; start-up fails if it names a live process.
	PIDFile string
	// AccessLog, when set, writes one line per request in Apache's combined
	// format to this file ("-": standard output), appended by every worker.
	// SIGUSR1 to the master reopens it in every worker (log rotation).
	AccessLog string

	// Canary configures canary reloads (-reload-canary, -canary-max-5xx-ratio,
	// -canary-max-p99-ratio): off by default.
	Canary CanaryConfig
}

// DefaultConfig returns the defaults of the command-line flags: one worker
// per CPU, everything else as in the zero Config.
func DefaultConfig() Config {
	return Config{Workers: runtime.NumCPU()}
}

const (
	defaultBind              = "127.0.0.1:8080"
	defaultMetricsBind       = "127.0.0.1:9090"
	defaultGracefulTimeout   = 30 * time.Second
	defaultTimeout           = 30 * time.Second
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 60 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
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
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = off
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	return c
}

// off is how withDefaults stores a timeout that is disabled: zero means
// "the default" in Config, so "none" is negative.
const off time.Duration = -1

// httpTimeout converts a Config timeout to net/http's convention (zero:
// none).
func httpTimeout(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// RegisterFlags registers the configuration's flags on fs, with c's current
// values as their defaults. Flags write into c when fs is parsed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := c.withDefaults()
	*c = d
	fs.StringVar(&c.Bind, "bind", d.Bind, "application listen `address`")
	fs.Var(intFlag{&c.Workers, 0}, "workers", "number of worker processes (0: serve in one process, no fork)")
	fs.StringVar(&c.MetricsBind, "metrics-bind", d.MetricsBind, "admin listener `address` (/metrics, /healthz, /workers), or \"off\"")
	fs.StringVar(&c.MetricsDir, "metrics-dir", d.MetricsDir, "`dir`ectory for this run's private metric files (default /dev/shm or $TMPDIR)")
	fs.StringVar(&c.ListenerMode, "listener-mode", d.ListenerMode, "\"reuseport\" (a socket per worker) or \"shared\" (one socket)")
	fs.DurationVar(&c.GracefulTimeout, "graceful-timeout", d.GracefulTimeout, "how long a stopping worker may drain")
	fs.DurationVar(&c.Timeout, "timeout", d.Timeout, "kill a worker whose heartbeat is silent this long")
	fs.Var(intFlag{&c.MaxRequests, 0}, "max-requests", "recycle a worker after this many requests (0: never)")
	fs.Var(intFlag{&c.MaxRequestsJitter, 0}, "max-requests-jitter", "random extra requests added to -max-requests per worker")
	fs.StringVar(&c.LogFormat, "log-format", d.LogFormat, "\"text\" or \"json\"")
	fs.Var(timeoutFlag{&c.ReadHeaderTimeout}, "read-header-timeout", "how long a worker waits for a request's headers (\"off\": no limit)")
	fs.Var(timeoutFlag{&c.ReadTimeout}, "read-timeout", "how long a worker waits for a whole request, body included (\"off\": no limit)")
	fs.Var(timeoutFlag{&c.WriteTimeout}, "write-timeout", "limit from the end of the request headers to the end of the response (\"off\": no limit)")
	fs.Var(timeoutFlag{&c.IdleTimeout}, "idle-timeout", "close keep-alive connections idle this long (\"off\": never)")
	fs.Var(intFlag{&c.MaxHeaderBytes, 1}, "max-header-bytes", "largest request header accepted, in bytes (larger: 431)")
	fs.StringVar(&c.AdminTLSCert, "admin-tls-cert", d.AdminTLSCert, "PEM certificate `file` for the admin listener (with -admin-tls-key: HTTPS)")
	fs.StringVar(&c.AdminTLSKey, "admin-tls-key", d.AdminTLSKey, "PEM private key `file` for the admin listener")
	fs.StringVar(&c.AdminTLSClientCA, "admin-tls-client-ca", d.AdminTLSClientCA, "PEM CA `file`: admin clients must present a certificate it signed")
	fs.StringVar(&c.AdminBasicAuthFile, "admin-basic-auth-file", d.AdminBasicAuthFile, "`file` of user:pbkdf2-hash lines: basic auth on /metrics and /workers")
	fs.StringVar(&c.PIDFile, "pidfile", d.PIDFile, "write the master's pid to this `file`")
	fs.StringVar(&c.AccessLog, "access-log", d.AccessLog, "append an access log (combined format) to this `file` (\"-\": stdout); SIGUSR1 reopens it")
	c.Canary.registerFlags(fs)
}

// timeoutFlag parses a duration where "0" and "off" mean no limit (stored
// as off, since zero means the default in Config).
type timeoutFlag struct{ p *time.Duration }

func (f timeoutFlag) String() string {
	if f.p == nil {
		return ""
	}
	if *f.p < 0 {
		return "off"
	}
	return f.p.String()
}

func (f timeoutFlag) Set(s string) error {
	if s == "off" {
		*f.p = off
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration (like 10s) or \"off\": %q", s)
	}
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s (0 or \"off\": no limit)", s)
	}
	if d == 0 {
		d = off
	}
	*f.p = d
	return nil
}

// intFlag parses an int of at least min.
type intFlag struct {
	p   *int
	min int
}

func (f intFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(*f.p)
}

func (f intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	if n < f.min {
		return fmt.Errorf("must be %d or more, got %d", f.min, n)
	}
	*f.p = n
	return nil
}

// Validate checks the configuration without side effects: the values
// first, then what they name on this machine (the metrics directory and its
// permissions, the admin TLS and basic-auth files; host names other than
// IP addresses are resolved). Each error is one line naming the problem.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.checkValues(); err != nil {
		return err
	}
	for _, a := range []struct{ flag, addr string }{{"-bind", c.Bind}, {"-metrics-bind", c.MetricsBind}} {
		if a.addr == "off" {
			continue
		}
		if err := lookupAddr(a.flag, a.addr); err != nil {
			return err
		}
	}
	parent := c.MetricsDir
	if parent == "" {
		parent = defaultMetricsParent()
	}
	if err := checkMetricsParent(parent); err != nil {
		return err
	}
	if _, err := newAdminSecurity(c); err != nil {
		return err
	}
	return nil
}

// checkValues is the part of Validate that looks at nothing but c (c has
// its defaults applied).
func (c Config) checkValues() error {
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
	if c.MaxRequestsJitter > 0 && c.MaxRequests == 0 {
		return errors.New("-max-requests-jitter needs -max-requests")
	}
	if err := c.Canary.check(); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format: must be \"text\" or \"json\", got %q", c.LogFormat)
	}
	if c.MaxHeaderBytes < 0 {
		return fmt.Errorf("-max-header-bytes: must be 1 or more, got %d", c.MaxHeaderBytes)
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		return errors.New("-admin-tls-cert and -admin-tls-key go together")
	}
	if c.AdminTLSClientCA != "" && c.AdminTLSCert == "" {
		return errors.New("-admin-tls-client-ca needs -admin-tls-cert and -admin-tls-key")
	}
	if c.MetricsBind == "off" && (c.AdminTLSCert != "" || c.AdminBasicAuthFile != "") {
		return errors.New("-admin-tls-* and -admin-basic-auth-file need an admin listener (-metrics-bind is off)")
	}
	for _, f := range []struct{ flag, v string }{
		{"-metrics-dir", c.MetricsDir}, {"-pidfile", c.PIDFile}, {"-access-log", c.AccessLog},
		{"-admin-tls-cert", c.AdminTLSCert}, {"-admin-tls-key", c.AdminTLSKey},
		{"-admin-tls-client-ca", c.AdminTLSClientCA}, {"-admin-basic-auth-file", c.AdminBasicAuthFile},
	} {
		if strings.ContainsRune(f.v, 0) {
			return fmt.Errorf("%s: path contains a NUL byte", f.flag)
		}
	}
	return nil
}

// checkAddr checks the syntax of a listen address.
func checkAddr(flagName, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: bad port %q", flagName, port)
	}
	return nil
}

// lookupAddr resolves the host of a listen address that is a name.
func lookupAddr(flagName, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		// Names other than localhost need a resolver at start-up;
		// listen addresses are IPs in practice.
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%s: unknown host %q", flagName, host)
		}
	}
	return nil
}
