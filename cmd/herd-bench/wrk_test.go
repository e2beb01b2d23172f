package main

import (
	"errors"
	"os"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseWrk(t *testing.T) {
	tests := []struct {
		file string
		want wrkResult
	}{
		{"wrk-ok.txt", wrkResult{
			Requests: 26519, Duration: 1011049 * time.Microsecond, RPS: 26229.19, Bytes: 3288356,
			Mean: 2750300 * time.Nanosecond, P50: 2137 * time.Microsecond, P90: 6286 * time.Microsecond,
			P99: 11751 * time.Microsecond, P999: 17985 * time.Microsecond, Max: 25921 * time.Microsecond,
		}},
		{"wrk-non2xx.txt", wrkResult{
			Requests: 17652, Duration: 1100266 * time.Microsecond, RPS: 16043.39, Bytes: 3106752,
			Mean: 457700 * time.Nanosecond, P50: 171 * time.Microsecond, P90: 882 * time.Microsecond,
			P99: 5640 * time.Microsecond, P999: 9287 * time.Microsecond, Max: 10369 * time.Microsecond,
			Non2xx: 17652,
		}},
		// No script line: the text is all there is; p99.9 is unknown.
		{"wrk-socket-errors.txt", wrkResult{
			Requests: 16, Duration: 2010 * time.Millisecond, RPS: 7.96,
			P50: 1020 * time.Millisecond, P90: 1030 * time.Millisecond, P99: 1030 * time.Millisecond,
			Non2xx: 2, Read: 3, Timeouts: 5,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := parseWrk(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseWrk:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestWrkErrorsAndGoodRPS(t *testing.T) {
	ok, _ := parseWrk(readTestdata(t, "wrk-ok.txt"))
	if ok.errors() != 0 || ok.goodRPS() < 26229 || ok.goodRPS() > 26230 {
		t.Errorf("clean run: errors %d, goodRPS %.2f; want 0 and 26229.x", ok.errors(), ok.goodRPS())
	}
	bad, _ := parseWrk(readTestdata(t, "wrk-non2xx.txt"))
	if bad.errors() != 17652 || bad.goodRPS() != 0 {
		t.Errorf("all Non-2xx: errors %d, goodRPS %.2f; want 17652 and 0 (wrk's Requests/sec is %.0f)", bad.errors(), bad.goodRPS(), bad.RPS)
	}
	sock, _ := parseWrk(readTestdata(t, "wrk-socket-errors.txt"))
	if sock.socketErrors() != 8 || sock.errors() != 10 {
		t.Errorf("socket errors %d, errors %d; want 8 and 10", sock.socketErrors(), sock.errors())
	}
}

func TestParseWrkFailures(t *testing.T) {
	if _, err := parseWrk("unable to connect to 127.0.0.1:18082 Connection refused\n"); !errors.Is(err, errNoWrkSummary) {
		t.Errorf("connection refused: err %v, want errNoWrkSummary", err)
	}
	for _, bad := range []string{
		"Requests/sec: fast\n",
		"Requests/sec: 1\n  Socket errors: connect x, read 0, write 0, timeout 0\n",
		"Requests/sec: 1\n  Non-2xx or 3xx responses: many\n",
		"Requests/sec: 1\nherd-bench: requests\n",
		"Requests/sec: 1\nherd-bench: requests=x\n",
		"  Latency Distribution\n     50%  1.00parsec\nRequests/sec: 1\n",
	} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk(%q): no error", bad)
		}
	}
}

func TestParseWrkTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"812.00us", 812 * time.Microsecond},
		{"1.23ms", 1230 * time.Microsecond},
		{"2.00s", 2 * time.Second},
		{"1.50m", 90 * time.Second},
		{"1.00h", time.Hour},
	}
	for _, tt := range tests {
		got, err := parseWrkTime(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseWrkTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "12", "x.yms", "5d"} {
		if _, err := parseWrkTime(bad); err == nil {
			t.Errorf("parseWrkTime(%q): no error", bad)
		}
	}
}
