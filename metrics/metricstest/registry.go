package metricstest

import (
	"fmt"
	"testing"

	"github.com/herdhttp/herd/metrics"
)

// NewRegistry returns a Registry with file id "0a" writing into a fresh t.TempDir(). It is
// closed and unmapped (Registry.Unmap) by t.Cleanup: stop whatever uses its handles before
// the test returns. Safe to call from parallel tests.
func NewRegistry(t testing.TB) *metrics.Registry {
	t.Helper()
	return NewRegistryWith(t, metrics.Options{})
}

// NewRegistryWith is NewRegistry with options; a zero opts.Dir means a fresh t.TempDir().
func NewRegistryWith(t testing.TB, opts metrics.Options) *metrics.Registry {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	r, err := metrics.NewRegistry(opts)
	if err != nil {
		t.Fatalf("metricstest: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Unmap(); err != nil {
			t.Errorf("metricstest: %v", err)
		}
	})
	return r
}

// NewWorkers returns n Registries sharing one fresh directory, with the file ids herd's
// workers use ("0a", "1a", ...): n simulated worker processes. Each one's Gather shows the
// merged view of all of them, as the master would serve it. They are closed by t.Cleanup.
func NewWorkers(t testing.TB, n int) []*metrics.Registry {
	t.Helper()
	dir := t.TempDir()
	regs := make([]*metrics.Registry, n)
	for i := range regs {
		regs[i] = NewRegistryWith(t, metrics.Options{Dir: dir, ID: fmt.Sprintf("%da", i)})
	}
	return regs
}

// Kill simulates the death of the worker that owns r, as the master handles it when it reaps
// a worker: r is closed and unmapped (Registry.Unmap) and its live* gauge files are removed
// (client_python's mark_process_dead), so that a successor may take the same ID. What else r wrote stays and keeps counting in the merged view. Do not
// use r's handles afterwards.
func Kill(t testing.TB, r *metrics.Registry) {
	t.Helper()
	if err := r.Unmap(); err != nil {
		t.Fatalf("metricstest: %v", err)
	}
	if err := metrics.RemoveLiveFiles(r.Dir(), r.ID()); err != nil {
		t.Fatalf("metricstest: %v", err)
	}
}
