package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// Config is the whole configuration of a herd program. The zero value works:
// one process (no fork) serving 127.0.0.1:8080, with its admin endpoints on
// 127.0.0.1:9090. DefaultConfig returns the defaults the command-line flags
// use, with one worker per CPU the process may use.
//
// Durations follow one convention: zero means the documented default, and
// Off (any negative value) means none, for the timeouts that can be turned
// off; on the command line (and in HERD_ variables) "off" or "0" is Off.
type Config struct {
	// Bind are the application's listen addresses, each served by every
	// worker: "HOST:PORT", "[IPv6]:PORT" or "unix:/path/to.sock"; default
	// "127.0.0.1:8080". In reuseport mode each worker slot has its own
	// socket per TCP address; a unix socket is one socket shared by all.
	Bind []string
	// BindMode is the mode of the unix sockets of Bind; zero: 0660 (the
	// user and group may connect).
	BindMode fs.FileMode
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
	// worker slot, kept open by the master) or "shared" (one socket); see
	// prefork.ListenerMode.
	ListenerMode string
	// GracefulTimeout bounds a worker's drain on stop; default 30s. It
	// cannot be Off.
	GracefulTimeout time.Duration
	// Timeout kills a worker whose heartbeat is silent this long; default
	// 30s. It cannot be Off.
	Timeout time.Duration
	// MaxRequests recycles a worker after it served this many requests;
	// 0 (default) never.
	MaxRequests int
	// MaxRequestsJitter adds a random 0..MaxRequestsJitter to each worker's
	// MaxRequests so that workers do not all restart at once.
	MaxRequestsJitter int
	// MaxWorkerRSS replaces a worker whose resident memory goes above this
	// many bytes, draining it like MaxRequests; 0 (default) never.
	MaxWorkerRSS int64
	// MaxWorkerAge replaces a worker this long after it started, draining
	// it like MaxRequests; 0 or Off (default) never.
	MaxWorkerAge time.Duration
	// MaxWorkerAgeJitter adds a random 0..MaxWorkerAgeJitter to each
	// worker's MaxWorkerAge.
	MaxWorkerAgeJitter time.Duration
	// LogFormat is "text" (default) or "json".
	LogFormat string

	// ReadHeaderTimeout bounds how long a worker waits for a request's
	// headers, from the moment the connection is ready to read one: the
	// defence against slow-header (slowloris) clients. Default 10s; Off:
	// none.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body. Default
	// 60s; Off: none (a handler reading the body of a client that sends one
	// byte a minute then waits forever).
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response. Default: Off, because it also cuts off slow
	// handlers and streamed responses without telling them; set it, or a
	// per-request deadline with http.ResponseController, when responses are
	// large and clients untrusted.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has been idle this
	// long. Default 120s; Off: none.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's headers (request line
	// included); larger requests get 431 Request Header Fields Too Large.
	// Default 64 KiB (net/http adds 4 KiB of slack).
	MaxHeaderBytes int

	// TLSCert and TLSKey, both set, serve every TCP address of Bind over
	// TLS (1.2 or later) with this PEM certificate chain and key; unix
	// sockets stay plain (a proxy on the same host speaks to them). The
	// files are read again when they change: new connections get a
	// renewed certificate without a restart.
	TLSCert, TLSKey string
	// DisableHTTP2 turns off HTTP/2 over TLS (offered by ALPN by default):
	// TLS clients then speak HTTP/1.1 (-http2=false).
	DisableHTTP2 bool
	// H2C serves cleartext HTTP/2 on the addresses without TLS, to clients
	// that know it is there (prior knowledge) and to those that ask with
	// "Upgrade: h2c" (requests without a body), besides HTTP/1.1: for a
	// proxy in front that speaks HTTP/2 to its backends.
	H2C bool

	// ProxyProtocol reads a PROXY protocol header (v1 or v2) at the start
	// of every connection from ProxyProtocolFrom: the client address it
	// carries becomes the request's RemoteAddr (and the access log's). A
	// header from any other source, a malformed one, or none from a
	// trusted source closes the connection.
	ProxyProtocol bool
	// ProxyProtocolFrom are the sources (CIDRs, or addresses) trusted to
	// send PROXY headers; empty: loopback (127.0.0.0/8, ::1). Every peer
	// of a unix socket is trusted: its file mode decides who connects.
	ProxyProtocolFrom []string

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
	// AdminPprof serves each worker's runtime profiles (net/http/pprof's
	// endpoints) through the admin listener at /debug/pprof/worker/{slot}/,
	// behind its TLS and basic auth. Default off.
	AdminPprof bool

	// PIDFile, when set, is written with the master's pid (atomically) and
	// removed at exit; start-up fails if it names a live process.
	PIDFile string
	// AccessLog, when set, writes one line per request in Apache's combined
	// format to this file ("-": standard output), appended by every worker.
	// SIGUSR1 to the master reopens it in every worker (log rotation).
	AccessLog string

	// Export lists gatherers of metrics kept in each worker's memory (a
	// client_golang prometheus.Gatherer has the shape of a
	// metrics.Gatherer) that the master's /metrics serves merged, as
	// package workermetrics describes. Set it in main, which runs in the
	// master and in every worker; package promclient sets it to
	// client_golang's default registry. Nil: nothing is exported.
	Export []metrics.Gatherer

	// Canary configures canary reloads (-reload-canary, -canary-max-5xx-ratio,
	// -canary-max-p99-ratio): off by default.
	Canary CanaryConfig

	// Logger receives the logs of the master, the workers and the App
	// (Worker.Logger). nil: standard error, in LogFormat. It is not a flag.
	Logger *slog.Logger
}

// Off, as a Config timeout, turns the timeout off. Zero means the default.
const Off time.Duration = -1

// DefaultConfig returns the defaults of the command-line flags: one worker
// per CPU this process may use (runtime.GOMAXPROCS, which follows a
// container's CPU limit), everything else as in the zero Config.
func DefaultConfig() Config {
	return Config{Workers: runtime.GOMAXPROCS(0)}
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
	if len(c.Bind) == 0 {
		c.Bind = []string{defaultBind}
	}
	if c.BindMode == 0 {
		c.BindMode = prefork.DefaultSocketMode
	}
	if c.MetricsBind == "" {
		c.MetricsBind = defaultMetricsBind
	}
	if c.ListenerMode == "" {
		c.ListenerMode = string(prefork.ModeReusePort)
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{
		{&c.GracefulTimeout, defaultGracefulTimeout},
		{&c.Timeout, defaultTimeout},
		{&c.ReadHeaderTimeout, defaultReadHeaderTimeout},
		{&c.ReadTimeout, defaultReadTimeout},
		{&c.WriteTimeout, Off},
		{&c.IdleTimeout, defaultIdleTimeout},
		{&c.MaxWorkerAge, Off},
		{&c.MaxWorkerAgeJitter, Off},
	} {
		if *d.p == 0 {
			*d.p = d.def
		} else if *d.p < 0 {
			*d.p = Off
		}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	c.Canary = c.Canary.withDefaults()
	return c
}

// httpTimeout converts a Config duration to net/http's and prefork's
// convention (zero: none).
func httpTimeout(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// settings is a Config that passed validate, with its defaults applied and
// everything it names loaded: what a run uses. Nothing after validate checks
// the configuration again.
type settings struct {
	Config                  // MetricsDir is the directory actually used
	listener appListener    // Bind and ListenerMode
	sec      *adminSecurity // the admin listener's TLS and basic auth
}

// checkAppFiles loads the files of the application's own settings (its
// TLS certificate), for the errors; each worker loads them again.
func (c Config) checkAppFiles() error {
	_, err := loadAppTLS(c)
	return err
}

// Validate checks the configuration without side effects: the values
// first, then what they name on this machine (the metrics directory, its
// permissions and free space, the admin TLS and basic-auth files; host
// names other than IP addresses are resolved). Each error is one line
// naming the flag.
func (c Config) Validate() error {
	_, err := c.validate()
	return err
}

func (c Config) validate() (*settings, error) {
	c = c.withDefaults()
	l, err := c.checkValues()
	if err != nil {
		return nil, err
	}
	if err := l.resolve(); err != nil {
		return nil, err
	}
	if c.MetricsBind != "off" {
		if err := lookupHost("-metrics-bind", c.MetricsBind); err != nil {
			return nil, err
		}
	}
	if c.MetricsDir == "" {
		c.MetricsDir = defaultMetricsParent()
	}
	if err := checkMetricsParent(c.MetricsDir); err != nil {
		return nil, err
	}
	if err := checkSpace(c.MetricsDir, c.Workers); err != nil {
		return nil, err
	}
	if err := c.checkAppFiles(); err != nil {
		return nil, err
	}
	sec, err := newAdminSecurity(c)
	if err != nil {
		return nil, err
	}
	return &settings{Config: c, listener: l, sec: sec}, nil
}

// checkValues is the part of validate that looks at nothing but c (c has
// its defaults applied). The rules of prefork's settings are prefork's
// (prefork.Config.Check); their errors are given the flag's name here.
func (c Config) checkValues() (appListener, error) {
	if c.Workers < 0 {
		return appListener{}, fmt.Errorf("-workers: must be 0 or more, got %d", c.Workers)
	}
	l, err := newAppListener(c.Bind, c.ListenerMode, c.BindMode)
	if err != nil {
		return appListener{}, err
	}
	if c.MetricsBind != "off" {
		if err := checkTCPAddr("-metrics-bind", c.MetricsBind); err != nil {
			return appListener{}, err
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"-graceful-timeout", c.GracefulTimeout}, {"-timeout", c.Timeout}} {
		if d.v < 0 {
			return appListener{}, fmt.Errorf("%s: cannot be off; give a duration such as 30s", d.flag)
		}
	}
	// The in-process backend is one worker that prefork does not start:
	// the same rules hold for it.
	pc := prefork.Config{Workers: max(c.Workers, 1)}
	c.configurePrefork(&pc, l)
	if err := pc.Check(); err != nil {
		return appListener{}, preforkError(err)
	}
	if err := c.Canary.check(); err != nil {
		return appListener{}, err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return appListener{}, fmt.Errorf("-log-format: must be \"text\" or \"json\", got %q", c.LogFormat)
	}
	if c.MaxHeaderBytes < 0 {
		return appListener{}, fmt.Errorf("-max-header-bytes: must be 1 or more, got %d", c.MaxHeaderBytes)
	}
	if err := c.checkAppTLS(l); err != nil {
		return appListener{}, err
	}
	if _, err := parseProxyFrom(c.ProxyProtocolFrom); err != nil {
		return appListener{}, err
	}
	if len(c.ProxyProtocolFrom) > 0 && !c.ProxyProtocol {
		return appListener{}, errors.New("-proxy-protocol-from needs -proxy-protocol")
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		return appListener{}, errors.New("-admin-tls-cert and -admin-tls-key go together")
	}
	if c.AdminTLSClientCA != "" && c.AdminTLSCert == "" {
		return appListener{}, errors.New("-admin-tls-client-ca needs -admin-tls-cert and -admin-tls-key")
	}
	if c.MetricsBind == "off" && c.AdminPprof {
		return appListener{}, errors.New("-admin-pprof needs an admin listener (-metrics-bind is off)")
	}
	if c.MetricsBind == "off" && (c.AdminTLSCert != "" || c.AdminBasicAuthFile != "") {
		return appListener{}, errors.New("-admin-tls-* and -admin-basic-auth-file need an admin listener (-metrics-bind is off)")
	}
	for _, f := range []struct{ flag, v string }{
		{"-bind", strings.Join(c.Bind, ",")}, {"-metrics-dir", c.MetricsDir},
		{"-tls-cert", c.TLSCert}, {"-tls-key", c.TLSKey}, {"-pidfile", c.PIDFile}, {"-access-log", c.AccessLog},
		{"-admin-tls-cert", c.AdminTLSCert}, {"-admin-tls-key", c.AdminTLSKey},
		{"-admin-tls-client-ca", c.AdminTLSClientCA}, {"-admin-basic-auth-file", c.AdminBasicAuthFile},
	} {
		if strings.ContainsRune(f.v, 0) {
			return appListener{}, fmt.Errorf("%s: path contains a NUL byte", f.flag)
		}
	}
	return l, nil
}

// configurePrefork sets the fields of a prefork.Config that come from c
// and its listener l: everything prefork needs, so that it reads nothing
// else of the configuration.
func (c Config) configurePrefork(pc *prefork.Config, l appListener) {
	pc.GracefulTimeout = c.GracefulTimeout
	pc.Timeout = c.Timeout
	pc.MaxRequests = c.MaxRequests
	pc.MaxRequestsJitter = c.MaxRequestsJitter
	pc.MaxWorkerRSS = c.MaxWorkerRSS
	pc.MaxWorkerAge = httpTimeout(c.MaxWorkerAge) // Off: never
	pc.MaxWorkerAgeJitter = httpTimeout(c.MaxWorkerAgeJitter)
	l.configurePrefork(pc)
}

// preforkConfig is the configuration of the worker pool of a run whose
// metric files go to dir.
func (s *settings) preforkConfig(dir string, environ []string, log *slog.Logger, hooks prefork.Hooks) prefork.Config {
	pc := prefork.Config{
		Workers:    s.Workers,
		WorkerData: dir,
		PIDFile:    s.PIDFile,
		Environ:    environ,
		Logger:     log,
		Hooks:      hooks,
	}
	s.configurePrefork(&pc, s.listener)
	if s.Canary.Window > 0 { // a nil interface otherwise: no canary
		pc.ReloadCanary = s.Canary.Window
		pc.CanaryJudge = newCanaryJudge(dir, s.Canary)
	}
	return pc
}

// preforkError names the flag of the prefork.Config field a
// prefork.ConfigError is about.
func preforkError(err error) error {
	var ce *prefork.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	flag, ok := map[string]string{
		"Workers":            "-workers",
		"Mode":               "-listener-mode",
		"SocketMode":         "-bind-mode",
		"Addrs":              "-bind",
		"GracefulTimeout":    "-graceful-timeout",
		"Timeout":            "-timeout",
		"MaxRequests":        "-max-requests",
		"MaxRequestsJitter":  "-max-requests-jitter",
		"MaxWorkerRSS":       "-max-worker-rss",
		"MaxWorkerAge":       "-max-worker-age",
		"MaxWorkerAgeJitter": "-max-worker-age-jitter",
	}[ce.Field]
	if !ok {
		return err
	}
	return fmt.Errorf("%s: %s", flag, ce.Msg)
}
