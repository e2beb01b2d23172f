package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// workerStatus is the part of one element of herd's GET /workers that
// herd-bench reads.
type workerStatus struct {
	Slot     int    `json:"slot"`
	ID       string `json:"id"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Requests uint64 `json:"requests"`
}

// adminClient talks to a herd master's admin listener. Its requests are
// never counted as application requests.
type adminClient struct {
	http *http.Client
	base string // http://host:port
}

func (a adminClient) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, nil
}

// workers fetches GET /workers.
func (a adminClient) workers(ctx context.Context) ([]workerStatus, error) {
	body, err := a.get(ctx, "/workers")
	if err != nil {
		return nil, err
	}
	var ws []workerStatus
	if err := json.Unmarshal(body, &ws); err != nil {
		return nil, fmt.Errorf("GET /workers: %w", err)
	}
	return ws, nil
}

// requestsTotal fetches the merged GET /metrics and sums every sample of
// the counter family name (http_requests_total).
func (a adminClient) requestsTotal(ctx context.Context, name string) (float64, error) {
	body, err := a.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	return sumSamples(body, name)
}

// sumSamples adds up the values of every sample named name in a Prometheus
// text exposition (0.0.4 or OpenMetrics). Label values may hold any
// character, braces and escaped quotes included.
func sumSamples(text []byte, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if rest[0] == '{' {
			end := labelsEnd(rest)
			if end < 0 {
				return 0, fmt.Errorf("metrics line %q: unterminated labels", line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// labelsEnd returns the index of the '}' closing the label set that s
// starts with, or -1.
func labelsEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i
		}
	}
	return -1
}
