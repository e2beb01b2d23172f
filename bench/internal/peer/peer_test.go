package peer

import (
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	herd := Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Idle: 120 * time.Second}
	for _, tt := range []struct {
		args []string
		want Flags
	}{
		{nil, Flags{Bind: "127.0.0.1:1", Timeouts: herd}},
		{[]string{"-bind", "127.0.0.1:2", "-timeouts", "herd"}, Flags{Bind: "127.0.0.1:2", Timeouts: herd}},
		{[]string{"-timeouts", "header"}, Flags{Bind: "127.0.0.1:1", Timeouts: Timeouts{ReadHeader: 10 * time.Second}}},
	} {
		got, err := ParseFlags("test", "127.0.0.1:1", tt.args)
		if err != nil || got != tt.want {
			t.Errorf("ParseFlags(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	for _, bad := range [][]string{{"-timeouts", "none"}, {"-timeouts", ""}, {"extra"}, {"-nope"}} {
		if f, err := ParseFlags("test", "127.0.0.1:1", bad); err == nil {
			t.Errorf("ParseFlags(%q) = %+v, no error", bad, f)
		}
	}
}

func TestNewServerHasTheTimeouts(t *testing.T) {
	f, err := ParseFlags("test", "127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(f, nil)
	if srv.Addr != "127.0.0.1:1" || srv.ReadHeaderTimeout != 10*time.Second || srv.ReadTimeout != 60*time.Second ||
		srv.IdleTimeout != 120*time.Second || srv.WriteTimeout != 0 {
		t.Errorf("server %s: read-header %s, read %s, idle %s, write %s; want herd's defaults 10s, 60s, 120s, none",
			srv.Addr, srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.WriteTimeout)
	}
}
