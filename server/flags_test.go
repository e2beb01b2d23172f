package server

import (
	"flag"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parseWithEnv parses args on a DefaultConfig with Workers 4, then applies
// environ as Main does.
func parseWithEnv(t *testing.T, args, environ []string) (Config, []string, error) {
	t.Helper()
	c := Config{Workers: 4}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	set, err := applyEnv(fs, environ)
	return c, variables(set), err
}

func TestEnvironmentSetsFlagsTheCommandLineDidNot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		workers int
		used    []string
	}{
		{"default", nil, nil, 4, nil},
		{"HERD_WORKERS", nil, []string{"HERD_WORKERS=3"}, 3, []string{"HERD_WORKERS"}},
		{"WEB_CONCURRENCY", nil, []string{"WEB_CONCURRENCY=3"}, 3, []string{"WEB_CONCURRENCY"}},
		{"HERD_WORKERS wins over WEB_CONCURRENCY", nil, []string{"WEB_CONCURRENCY=5", "HERD_WORKERS=3"}, 3, []string{"HERD_WORKERS"}},
		{"flag wins over HERD_WORKERS", []string{"-workers", "2"}, []string{"HERD_WORKERS=3"}, 2, nil},
		{"flag wins over WEB_CONCURRENCY", []string{"-workers=2"}, []string{"WEB_CONCURRENCY=3"}, 2, nil},
		{"empty is unset", nil, []string{"HERD_WORKERS=", "WEB_CONCURRENCY=3"}, 3, []string{"WEB_CONCURRENCY"}},
		{"last one wins", nil, []string{"HERD_WORKERS=1", "HERD_WORKERS=3"}, 3, []string{"HERD_WORKERS"}},
		{"other names ignored", nil, []string{"HERD_WORKER=x", "HERD_RUN_DIR=/x", "herd_workers=9"}, 4, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, used, err := parseWithEnv(t, tc.args, tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			if c.Workers != tc.workers || !slices.Equal(used, tc.used) {
				t.Errorf("workers %d from %v, want %d from %v", c.Workers, used, tc.workers, tc.used)
			}
		})
	}
}

func TestEveryFlagHasItsVariable(t *testing.T) {
	t.Parallel()
	var environ []string
	want := Config{}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	want.RegisterFlags(fs)
	// A value for every flag that differs from its default.
	values := map[string]string{
		"bind": "127.0.0.2:81,unix:/run/h.sock", "bind-mode": "0600", "workers": "7", "metrics-bind": "off", "metrics-dir": "/srv/m",
		"listener-mode": "shared", "graceful-timeout": "5s", "timeout": "6s", "max-requests": "100",
		"max-requests-jitter": "10", "max-worker-rss": "512MiB", "max-worker-age": "1h",
		"max-worker-age-jitter": "5m", "reload-canary": "10s", "canary-max-5xx-ratio": "0.05",
		"canary-max-p99-ratio": "3", "log-format": "json", "read-header-timeout": "1s",
		"read-timeout": "off", "write-timeout": "9s", "idle-timeout": "0", "max-header-bytes": "1000",
		"admin-tls-cert": "c", "admin-tls-key": "k", "admin-tls-client-ca": "ca",
		"admin-basic-auth-file": "u", "admin-pprof": "true", "pidfile": "/run/h.pid", "access-log": "-",
		"tls-cert": "tc", "tls-key": "tk", "http2": "false", "h2c": "true",
		"proxy-protocol": "true", "proxy-protocol-from": "10.0.0.0/8,::1",
	}
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := values[f.Name]
		if !ok {
			t.Fatalf("no test value for -%s", f.Name)
		}
		environ = append(environ, envName(f.Name)+"="+v)
		if err := f.Value.Set(v); err != nil {
			t.Fatal(err)
		}
	})
	got, used, err := parseWithEnv(t, nil, environ)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(used) != len(values) {
		t.Errorf("from the environment:\n got  %+v\n want %+v\n(used %v)", got, want, used)
	}
	if envName("metrics-dir") != "HERD_METRICS_DIR" || envName("graceful-timeout") != "HERD_GRACEFUL_TIMEOUT" {
		t.Errorf("envName: %s, %s", envName("metrics-dir"), envName("graceful-timeout"))
	}
}

func TestBadVariableIsOneLineNamingIt(t *testing.T) {
	t.Parallel()
	for _, environ := range [][]string{
		{"HERD_WORKERS=x"},
		{"HERD_WORKERS=-1"},
		{"WEB_CONCURRENCY=three"},
		{"HERD_READ_TIMEOUT=soon"},
		{"HERD_GRACEFUL_TIMEOUT=off"},
		{"HERD_MAX_HEADER_BYTES=0"},
	} {
		name, _, _ := strings.Cut(environ[0], "=")
		_, _, err := parseWithEnv(t, nil, environ)
		if err == nil || !strings.HasPrefix(err.Error(), name+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line starting with %s", environ, err, name)
		}
	}
}

// The configuration logged at start names files but never holds what is in them.
func TestLoggedConfigurationHoldsNoSecret(t *testing.T) {
	t.Parallel()
	c := Config{AdminBasicAuthFile: "/etc/herd/users", AdminTLSKey: "/etc/herd/key.pem"}.withDefaults()
	attrs := map[string]string{}
	for _, a := range c.logAttrs() {
		attr := a.(slog.Attr)
		attrs[attr.Key] = attr.Value.String()
	}
	if attrs["admin-basic-auth-file"] != "/etc/herd/users" || attrs["admin-tls-key"] != "/etc/herd/key.pem" || attrs["write-timeout"] != "off" {
		t.Errorf("logged configuration: %v", attrs)
	}
	if len(attrs) != len(c.flags()) {
		t.Errorf("%d attributes for %d flags", len(attrs), len(c.flags()))
	}
}

func TestConfigErrorNamesTheVariableThatSetTheFlag(t *testing.T) {
	t.Parallel()
	set := []envSetting{{"listener-mode", "HERD_LISTENER_MODE"}, {"admin-tls-cert", "HERD_ADMIN_TLS_CERT"}}
	for msg, want := range map[string]string{
		`-listener-mode: unknown listener mode "magic"`:  `-listener-mode: unknown listener mode "magic" (set by HERD_LISTENER_MODE)`,
		"-admin-tls-cert and -admin-tls-key go together": "-admin-tls-cert and -admin-tls-key go together (set by HERD_ADMIN_TLS_CERT)",
		"-bind: bad port":             "-bind: bad port",
		"-listener-modes: not a flag": "-listener-modes: not a flag",
	} {
		if got := blameEnv(msg, set); got != want {
			t.Errorf("blameEnv(%q) = %q, want %q", msg, got, want)
		}
	}
}

// -bind given several times lists every address; the first replaces the
// default.
func TestBindIsRepeatable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args, environ, want []string
	}{
		{nil, nil, []string{defaultBind}},
		{[]string{"-bind", "0.0.0.0:80"}, nil, []string{"0.0.0.0:80"}},
		{[]string{"-bind", "0.0.0.0:80", "-bind", "unix:/run/a.sock", "-bind", "[::1]:81,127.0.0.1:82"}, nil,
			[]string{"0.0.0.0:80", "unix:/run/a.sock", "[::1]:81", "127.0.0.1:82"}},
		{nil, []string{"HERD_BIND=unix:/run/a.sock,127.0.0.1:80"}, []string{"unix:/run/a.sock", "127.0.0.1:80"}},
	} {
		c, _, err := parseWithEnv(t, tc.args, tc.environ)
		if err != nil || !slices.Equal(c.Bind, tc.want) {
			t.Errorf("%v %v: Bind %q (%v), want %q", tc.args, tc.environ, c.Bind, err, tc.want)
		}
	}
}
