package main

import "testing"

func TestSumSamples(t *testing.T) {
	text := `# HELP http_requests_total HTTP requests.
# TYPE http_requests_total counter
http_requests_total{code="200",method="GET",route="/hello"} 1500
http_requests_total{code="404",method="GET",route="<unmatched>"} 2
http_requests_total{code="200",method="GET",route="/odd/{a}\"}\\"} 3 1700000000000
http_requests_total_created{code="200",method="GET",route="/hello"} 1.7e9
http_requests_totally 1000
http_request_duration_seconds_count{method="GET",route="/hello"} 1500
http_requests_total 0.5 # {trace_id="x"} 1
`
	got, err := sumSamples([]byte(text), "http_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if got != 1505.5 {
		t.Errorf("sumSamples = %v, want 1505.5", got)
	}
	for _, bad := range []string{`http_requests_total{code="200" 1`, "http_requests_total{} x", "http_requests_total{}"} {
		if _, err := sumSamples([]byte(bad), "http_requests_total"); err == nil {
			t.Errorf("sumSamples(%q): no error", bad)
		}
	}
}

func TestWorkerDeltas(t *testing.T) {
	got := workerDeltas(map[int]uint64{0: 100, 1: 90}, map[int]uint64{0: 600, 1: 40, 2: 7})
	want := []uint64{500, 40, 7} // slot 1 was taken over by a new worker; slot 2 is new
	if len(got) != len(want) {
		t.Fatalf("workerDeltas = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("workerDeltas = %v, want %v", got, want)
		}
	}
}
