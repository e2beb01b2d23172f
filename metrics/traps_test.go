package metrics_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// The three traps of the seed article (client_python's multiprocess mode under test), each
// shown impossible in herd.

// Trap 1: prometheus_client picks single- or multi-process mode from PROMETHEUS_MULTIPROC_DIR
// once, at import; set it a line too late and every metric silently stays in memory. herd
// reads no environment variable and has no init(): the directory is an argument, so the
// order of imports and Setenv calls cannot matter.
func TestTrap1_NoEnvironmentVariableNoImportOrder(t *testing.T) {
	// Not parallel: it sets environment variables to show they change nothing.
	before := metricstest.NewRegistry(t)
	cBefore := before.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"})
	cBefore.Inc()

	elsewhere := t.TempDir()
	t.Setenv("PROMETHEUS_MULTIPROC_DIR", elsewhere)
	t.Setenv("prometheus_multiproc_dir", elsewhere)

	after := metricstest.NewRegistry(t)
	after.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Add(2)
	cBefore.Inc()

	if got := metricstest.Value(t, before, "c_total"); got != 2 {
		t.Errorf("registry made before Setenv: c_total = %v, want 2", got)
	}
	if got := metricstest.Value(t, after, "c_total"); got != 2 {
		t.Errorf("registry made after Setenv: c_total = %v, want 2", got)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("files appeared in the environment's directory: %v", ents)
	}

	// And structurally: no init function, no environment read, in any non-test file of the
	// packages a worker's metrics go through.
	for _, dir := range []string{".", "metricstest", "../mmapstore"} {
		checkNoInitNoEnv(t, dir)
	}
}

func checkNoInitNoEnv(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Recv == nil && n.Name.Name == "init" {
					t.Errorf("%s: func init", fset.Position(n.Pos()))
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "os" {
					switch n.Sel.Name {
					case "Getenv", "LookupEnv", "Environ", "Setenv":
						t.Errorf("%s: os.%s", fset.Position(n.Pos()), n.Sel.Name)
					}
				}
			}
			return true
		})
	}
}

// Trap 2: MultiProcessCollector captures its directory when it is built; a test that points
// the environment at a fresh directory afterwards writes to one place and reads another.
// In herd the writer and the reader of a directory are one object: each test's fresh
// Registry on a fresh directory reads exactly what it wrote, however many tests ran before.
func TestTrap2_WriterAndReaderAreOneObject(t *testing.T) {
	t.Parallel()
	for i := range 5 {
		// Five "tests" in a row, each with its own fresh store, as a test suite would have.
		reg := metricstest.NewRegistry(t)
		c := reg.MustNewCounterVec(metrics.CounterOpts{Name: "requests_total", Help: "h"}, "n")
		c.With("x").Add(float64(i + 1))
		if got := metricstest.Value(t, reg, "requests_total", "n", "x"); got != float64(i+1) {
			t.Errorf("store %d: read %v, want %v (what it wrote)", i, got, i+1)
		}
		// The reader is the writer's, not one built earlier for another directory.
		g := metrics.NewDirGatherer(reg.Dir(), metrics.GathererOpts{})
		if got := metricstest.Value(t, g, "requests_total", "n", "x"); got != float64(i+1) {
			t.Errorf("store %d: master's view %v, want %v", i, got, i+1)
		}
	}
}

// Trap 3: writers cache one open mapping per file; a fixture that deletes the files leaves
// them writing into unlinked inodes, silently, for the rest of the run. herd notices (the
// Registry checks its files before every Gather) and recreates them with their values; no
// increment is lost, even with writers running while the files are deleted.
func TestTrap3_RemovedFilesDoNotSwallowWrites(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	c := reg.MustNewCounterVec(metrics.CounterOpts{Name: "events_total", Help: "h"}, "k")
	g := reg.MustNewGauge(metrics.GaugeOpts{Name: "level", Help: "h", Mode: metrics.GaugeLiveSum})
	h := reg.MustNewHistogram(metrics.HistogramOpts{Name: "lat", Help: "h"})
	c.With("a").Inc()
	g.Set(7)
	h.Observe(0.2)

	removeDBFiles := func() {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(reg.Dir(), "*.db"))
		if len(files) == 0 {
			t.Fatal("no files to remove")
		}
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeDBFiles() // the fixture "cleans up" between tests
	c.With("a").Inc()
	c.With("b").Inc() // a new series after the removal
	g.Inc()
	h.Observe(0.2)
	metricstest.ExpectText(t, reg, `# HELP events_total h
# TYPE events_total counter
events_total{k="a"} 2
events_total{k="b"} 1
# HELP level h
# TYPE level gauge
level 8
`, "events_total", "level")
	if got := metricstest.Value(t, reg, "lat_count"); got != 2 {
		t.Errorf("lat_count = %v, want 2", got)
	}

	// Writers running while files are removed again and again: exact totals.
	const writers, each = 8, 2000
	a := c.With("a")
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				a.Inc()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		removeDBFiles()
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := metricstest.Value(t, reg, "events_total", "k", "a"), float64(2+writers*each); got != want {
		t.Errorf("events_total{k=a} = %v, want %v: increments were lost", got, want)
	}
}
