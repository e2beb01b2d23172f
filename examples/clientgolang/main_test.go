package main

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics/metricstest"
)

func TestJobCountsKinds(t *testing.T) {
	t.Parallel()
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "example_jobs_total", Help: "Jobs run, by kind."}, []string{"kind"})
	h := newApp(metricstest.NewRegistry(t), jobs)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/job?kind=resize", 200, `{"kind":"resize"}` + "\n"},
		{"/job?kind=resize", 200, `{"kind":"resize"}` + "\n"},
		{"/job?kind=email", 200, `{"kind":"email"}` + "\n"},
		{"/job", 400, ""},
		{"/job?kind=Bad%22", 400, ""},
		{"/job?kind=" + strings.Repeat("a", 33), 400, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
	var m dto.Metric
	if err := jobs.WithLabelValues("resize").Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("example_jobs_total{kind=resize} = %v (%v), want 2", m.GetCounter().GetValue(), err)
	}
	if n := seriesOf(t, jobs); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
}

func TestKindsAreBounded(t *testing.T) {
	t.Parallel()
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "example_jobs_total", Help: "Jobs run, by kind."}, []string{"kind"})
	h := newApp(metricstest.NewRegistry(t), jobs)
	codes := map[int]int{}
	for i := range maxKinds + 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/job?kind=k%d", i), nil))
		codes[rec.Code]++
	}
	if codes[200] != maxKinds || codes[429] != 10 {
		t.Errorf("status codes %v, want %d x 200 and 10 x 429", codes, maxKinds)
	}
	if n := seriesOf(t, jobs); n != maxKinds {
		t.Errorf("%d series, want %d", n, maxKinds)
	}
}

func seriesOf(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range fams {
		n += len(mf.Metric)
	}
	return n
}
