package server

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseArgs registers a zero Config's flags on a fresh FlagSet and parses
// args.
func parseArgs(args []string) (Config, *flag.FlagSet, error) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse(args)
	return c, fs, err
}

func TestFlagsSetTheConfig(t *testing.T) {
	t.Parallel()
	c, _, err := parseArgs([]string{
		"-workers", "3", "-read-header-timeout", "2s", "-read-timeout", "off", "-write-timeout", "5s",
		"-idle-timeout", "0", "-max-header-bytes", "8192", "-pidfile", "/run/x.pid", "-access-log", "-",
		"-admin-tls-cert", "c.pem", "-admin-tls-key", "k.pem", "-admin-basic-auth-file", "users",
		"-reload-canary", "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Bind: []string{defaultBind}, BindMode: 0o660, Workers: 3, MetricsBind: defaultMetricsBind, ListenerMode: "reuseport",
		GracefulTimeout: defaultGracefulTimeout, Timeout: defaultTimeout, LogFormat: "text",
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: Off, WriteTimeout: 5 * time.Second,
		IdleTimeout: Off, MaxHeaderBytes: 8192, PIDFile: "/run/x.pid", AccessLog: "-",
		AdminTLSCert: "c.pem", AdminTLSKey: "k.pem", AdminBasicAuthFile: "users",
		MaxWorkerAge: Off, MaxWorkerAgeJitter: Off,
		Canary: CanaryConfig{Window: 10 * time.Second, Max5xxRatio: 0.01, MaxP99Ratio: 2},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if _, err := c.checkValues(); err != nil {
		t.Error(err)
	}
}

func TestDefaultTimeouts(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", httpTimeout(c.ReadHeaderTimeout), 10 * time.Second},
		{"ReadTimeout", httpTimeout(c.ReadTimeout), 60 * time.Second},
		{"WriteTimeout", httpTimeout(c.WriteTimeout), 0},
		{"IdleTimeout", httpTimeout(c.IdleTimeout), 120 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if c.MaxHeaderBytes != 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want 64 KiB", c.MaxHeaderBytes)
	}
}

func TestBadValuesAreOneLineNamingTheFlag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-read-timeout", "-1s"}, "read-timeout"},
		{[]string{"-idle-timeout", "soon"}, "idle-timeout"},
		{[]string{"-max-header-bytes", "0"}, "max-header-bytes"},
		{[]string{"-max-header-bytes", "lots"}, "max-header-bytes"},
		{[]string{"-admin-tls-cert", "c.pem"}, "admin-tls-key"},
		{[]string{"-admin-tls-key", "k.pem"}, "admin-tls-cert"},
		{[]string{"-admin-tls-client-ca", "ca.pem"}, "admin-tls-client-ca"},
		{[]string{"-metrics-bind", "off", "-admin-basic-auth-file", "u"}, "metrics-bind"},
		{[]string{"-max-requests-jitter", "5"}, "max-requests"},
		{[]string{"-access-log", "a\x00b"}, "access-log"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			c, _, err := parseArgs(tc.args)
			if err == nil {
				_, err = c.checkValues()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q", msg, tc.want)
			}
		})
	}
}

// FuzzFlags parses arbitrary command lines (arguments separated by NUL).
// Parsing never panics, and a command line that parses and passes
// checkValues describes its Config completely: printing every flag's value
// and parsing that again gives the same Config, which passes too.
func FuzzFlags(f *testing.F) {
	for _, seed := range []string{
		"",
		"-workers\x002",
		"-workers=0\x00-bind\x00127.0.0.1:0",
		"-read-timeout\x00off\x00-write-timeout\x0090s\x00-idle-timeout=0",
		"-max-header-bytes\x001048576",
		"-graceful-timeout\x00-1s",
		"-metrics-bind\x00off\x00-listener-mode\x00shared",
		"-admin-tls-cert\x00c\x00-admin-tls-key\x00k\x00-admin-tls-client-ca\x00ca",
		"-max-requests\x00100\x00-max-requests-jitter\x0010",
		"-access-log\x00-\x00-pidfile\x00/run/h.pid\x00-log-format\x00json",
		"-timeout\x001h2m3.5s\x00-read-header-timeout\x001ns",
		"--workers\x0099999999999999999999",
		"-bind\x00127.0.0.1:1\x00-bind\x00unix:/run/a.sock,[::1]:2\x00-bind-mode\x00600",
		"-tls-cert\x00c\x00-tls-key\x00k\x00-http2=false",
		"-h2c\x00-proxy-protocol\x00-proxy-protocol-from\x0010.0.0.0/8,::1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		c, fs, err := parseArgs(args)
		if err != nil {
			return
		}
		if _, err := c.checkValues(); err != nil {
			return
		}
		var again []string
		fs.VisitAll(func(fl *flag.Flag) { again = append(again, "-"+fl.Name+"="+fl.Value.String()) })
		c2, _, err := parseArgs(again)
		if err != nil {
			t.Fatalf("printed flags %q do not parse: %v", again, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("printed flags %q give %+v, not %+v", again, c2, c)
		}
		if _, err := c2.checkValues(); err != nil {
			t.Fatalf("printed flags %q fail: %v", again, err)
		}
	})
}
