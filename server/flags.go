package server

import (
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// configFlag is one command-line flag of a Config field; the same setting
// is read from the environment variable envName(name).
type configFlag struct {
	name, usage string
	value       flag.Value // bound to the field
}

// flags lists every flag of c, bound to c's fields: the one table behind
// RegisterFlags, the HERD_ variables and the configuration logged at start.
func (c *Config) flags() []configFlag {
	return []configFlag{
		{"bind", "application listen `address`: HOST:PORT, [IPv6]:PORT or unix:/path/to.sock; repeat the flag (or separate with commas) for several", &listFlag{p: &c.Bind}},
		{"workers", "number of worker processes (0: serve in one process, no fork; default: GOMAXPROCS, or WEB_CONCURRENCY)", intFlag{&c.Workers, 0}},
		{"metrics-bind", "admin listener `address` (/metrics, /healthz, /workers), or \"off\"", stringFlag{&c.MetricsBind}},
		{"metrics-dir", "`dir`ectory for this run's private metric files (default /dev/shm or $TMPDIR)", stringFlag{&c.MetricsDir}},
		{"listener-mode", "\"reuseport\" (a socket per worker) or \"shared\" (one socket)", stringFlag{&c.ListenerMode}},
		{"bind-mode", "permissions of the unix sockets of -bind, in octal", modeFlag{&c.BindMode}},
		{"graceful-timeout", "how long a stopping worker may drain", durationFlag{&c.GracefulTimeout, false}},
		{"timeout", "kill a worker whose heartbeat is silent this long", durationFlag{&c.Timeout, false}},
		{"max-requests", "recycle a worker after this many requests (0: never)", intFlag{&c.MaxRequests, 0}},
		{"max-requests-jitter", "random extra requests added to -max-requests per worker", intFlag{&c.MaxRequestsJitter, 0}},
		{"max-worker-rss", "replace a worker whose resident memory goes above this `size` (512MiB; 0: never)", byteSizeFlag{&c.MaxWorkerRSS}},
		{"max-worker-age", "replace a worker this long after it started (\"off\": never)", durationFlag{&c.MaxWorkerAge, true}},
		{"max-worker-age-jitter", "random extra age added to -max-worker-age per worker", durationFlag{&c.MaxWorkerAgeJitter, true}},
		{"reload-canary", "on reload (SIGHUP), replace one worker first and compare it with the others for this `duration` before the rest (\"off\": no canary)", durationFlag{&c.Canary.Window, true}},
		{"canary-max-5xx-ratio", "roll a reload back if its canary's share of 5xx responses is more than this above the other workers'", floatFlag{&c.Canary.Max5xxRatio}},
		{"canary-max-p99-ratio", "roll a reload back if its canary's p99 latency is more than this many times the other workers'", floatFlag{&c.Canary.MaxP99Ratio}},
		{"log-format", "\"text\" or \"json\"", stringFlag{&c.LogFormat}},
		{"read-header-timeout", "how long a worker waits for a request's headers (\"off\": no limit)", durationFlag{&c.ReadHeaderTimeout, true}},
		{"read-timeout", "how long a worker waits for a whole request, body included (\"off\": no limit)", durationFlag{&c.ReadTimeout, true}},
		{"write-timeout", "limit from the end of the request headers to the end of the response (\"off\": no limit)", durationFlag{&c.WriteTimeout, true}},
		{"idle-timeout", "close keep-alive connections idle this long (\"off\": never)", durationFlag{&c.IdleTimeout, true}},
		{"max-header-bytes", "largest request header accepted, in bytes (larger: 431)", intFlag{&c.MaxHeaderBytes, 1}},
		{"tls-cert", "PEM certificate `file` (chain): serve the TCP addresses of -bind over TLS, with -tls-key; read again when it changes", stringFlag{&c.TLSCert}},
		{"tls-key", "PEM private key `file` of -tls-cert", stringFlag{&c.TLSKey}},
		{"http2", "offer HTTP/2 over TLS (ALPN); -http2=false: HTTP/1.1 only", boolFlag{&c.DisableHTTP2, true}},
		{"h2c", "serve cleartext HTTP/2 too (prior knowledge, and Upgrade: h2c) on the addresses without TLS", boolFlag{&c.H2C, false}},
		{"proxy-protocol", "read a PROXY protocol header (v1 or v2) from the sources of -proxy-protocol-from: its client address is the request's", boolFlag{&c.ProxyProtocol, false}},
		{"proxy-protocol-from", "`CIDR`s (comma-separated) trusted to send PROXY headers (default: loopback, 127.0.0.0/8,::1/128)", &listFlag{p: &c.ProxyProtocolFrom}},
		{"admin-tls-cert", "PEM certificate `file` for the admin listener (with -admin-tls-key: HTTPS)", stringFlag{&c.AdminTLSCert}},
		{"admin-tls-key", "PEM private key `file` for the admin listener", stringFlag{&c.AdminTLSKey}},
		{"admin-tls-client-ca", "PEM CA `file`: admin clients must present a certificate it signed", stringFlag{&c.AdminTLSClientCA}},
		{"admin-basic-auth-file", "`file` of user:pbkdf2-hash lines: basic auth on /metrics and /workers", stringFlag{&c.AdminBasicAuthFile}},
		{"admin-pprof", "serve each worker's pprof profiles on the admin listener at /debug/pprof/worker/{slot}/", boolFlag{&c.AdminPprof, false}},
		{"pidfile", "write the master's pid to this `file`", stringFlag{&c.PIDFile}},
		{"access-log", "append an access log (combined format) to this `file` (\"-\": stdout); SIGUSR1 reopens it", stringFlag{&c.AccessLog}},
	}
}

// RegisterFlags registers the configuration's flags on fs, with c's current
// values (defaults applied) as their defaults. Flags write into c when fs is
// parsed. Main also reads each flag not given on the command line from the
// environment variable HERD_<FLAG> (upper case, '-' as '_').
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	*c = c.withDefaults()
	for _, f := range c.flags() {
		fs.Var(f.value, f.name, f.usage+" [$"+envName(f.name)+"]")
	}
}

// logAttrs are the effective configuration, one attribute per flag, for
// the log line at start. Files are named, never read: no secret is logged.
func (c Config) logAttrs() []any {
	var attrs []any
	for _, f := range c.flags() {
		attrs = append(attrs, slog.String(f.name, f.value.String()))
	}
	return attrs
}

// envPrefix starts the environment variable of every flag.
const envPrefix = "HERD_"

// webConcurrency is the worker count of gunicorn, Heroku and Puma; it sets
// -workers when neither the flag nor HERD_WORKERS does.
const webConcurrency = "WEB_CONCURRENCY"

// envName is the environment variable of a flag: "metrics-dir" is
// HERD_METRICS_DIR.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envSetting is a flag that applyEnv set from an environment variable.
type envSetting struct{ flag, variable string }

// applyEnv sets every flag of fs that the command line did not set from its
// HERD_ variable in environ, and -workers from WEB_CONCURRENCY when neither
// sets it. The command line wins over the environment, the environment over
// the default; a variable set to "" counts as unset. It returns what it
// set, or an error naming the first variable whose value the flag refuses.
func applyEnv(fs *flag.FlagSet, environ []string) (set []envSetting, err error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	setFrom := func(name, variable string) bool {
		v := lookupEnv(environ, variable)
		if v == "" || err != nil {
			return false
		}
		if e := fs.Set(name, v); e != nil {
			err = fmt.Errorf("%s: %v", variable, e)
			return false
		}
		set = append(set, envSetting{name, variable})
		return true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !given[f.Name] {
			given[f.Name] = setFrom(f.Name, envName(f.Name))
		}
	})
	if fs.Lookup("workers") != nil && !given["workers"] {
		setFrom("workers", webConcurrency)
	}
	return set, err
}

// variables lists the variables of set, for the log.
func variables(set []envSetting) []string {
	var vs []string
	for _, e := range set {
		vs = append(vs, e.variable)
	}
	return vs
}

// blameEnv adds to a configuration error that starts with a flag's name
// ("-listener-mode: ...") the variable that set that flag, if one did.
func blameEnv(msg string, set []envSetting) string {
	for _, e := range set {
		if strings.HasPrefix(msg, "-"+e.flag+":") || strings.HasPrefix(msg, "-"+e.flag+" ") {
			return msg + " (set by " + e.variable + ")"
		}
	}
	return msg
}

// lookupEnv returns the last value of key in environ, as the libc does for
// duplicates.
func lookupEnv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// stringFlag is flag.StringVar's value, declared here so that every flag of
// the table is built the same way.
type stringFlag struct{ p *string }

func (f stringFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f stringFlag) Set(s string) error {
	*f.p = s
	return nil
}

// listFlag is a list of strings: the first Set replaces the default, later
// ones add to it; each value may hold several items separated by commas.
// The empty value empties the list (the field's default).
type listFlag struct {
	p   *[]string
	set bool
}

func (f *listFlag) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	return strings.Join(*f.p, ",")
}

func (f *listFlag) Set(s string) error {
	if !f.set {
		*f.p, f.set = nil, true
	}
	if s == "" {
		*f.p = nil // the default, as String prints it
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			return fmt.Errorf("empty item in %q", s)
		}
		*f.p = append(*f.p, item)
	}
	return nil
}

// modeFlag is a file mode in octal ("0660", "660").
type modeFlag struct{ p *fs.FileMode }

func (f modeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(*f.p))
}

func (f modeFlag) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n > 0o777 || n == 0 {
		return fmt.Errorf("not a mode in octal from 0001 to 0777: %q", s)
	}
	*f.p = fs.FileMode(n)
	return nil
}

// boolFlag is a boolean flag; with invert, the field holds its negation
// (DisableHTTP2 for -http2), so that the zero Config means the default.
type boolFlag struct {
	p      *bool
	invert bool
}

func (f boolFlag) IsBoolFlag() bool { return true }

func (f boolFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.FormatBool(*f.p != f.invert)
}

func (f boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not true or false: %q", s)
	}
	*f.p = v != f.invert
	return nil
}

// durationFlag parses a duration. With canOff, "off" and "0" mean no limit
// (stored as Off, since zero means the default in Config); without, they
// are refused.
type durationFlag struct {
	p      *time.Duration
	canOff bool
}

func (f durationFlag) String() string {
	if f.p == nil {
		return ""
	}
	if *f.p < 0 {
		return "off"
	}
	return f.p.String()
}

func (f durationFlag) Set(s string) error {
	d := Off
	if s != "off" {
		var err error
		d, err = time.ParseDuration(s)
		switch {
		case err != nil && f.canOff:
			return fmt.Errorf("not a duration (like 10s) or \"off\": %q", s)
		case err != nil:
			return fmt.Errorf("not a duration (like 30s): %q", s)
		case d < 0 && f.canOff:
			return fmt.Errorf("must not be negative, got %s (0 or \"off\": no limit)", s)
		case d < 0:
			return fmt.Errorf("must not be negative, got %s", s)
		}
	}
	if d <= 0 {
		if !f.canOff {
			return fmt.Errorf("cannot be off, got %q; give a duration such as 30s", s)
		}
		d = Off
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

// byteSizeFlag parses a size in bytes with an optional unit (B, KiB, MiB,
// GiB, TiB), GOMEMLIMIT's syntax.
type byteSizeFlag struct{ p *int64 }

func (f byteSizeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.FormatInt(*f.p, 10)
}

func (f byteSizeFlag) Set(s string) error {
	n, err := prefork.ParseByteCount(s)
	if err != nil {
		return fmt.Errorf("not a size in bytes (like 512MiB): %q", s)
	}
	*f.p = n
	return nil
}

// floatFlag parses a float64.
type floatFlag struct{ p *float64 }

func (f floatFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f floatFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	*f.p = v
	return nil
}
