package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/mmapstore"
)

// ErrClosed is returned for families registered on a closed Registry, for series that
// would need a file the Registry had not opened before Close, and for every series
// requested after Unmap.
var ErrClosed = errors.New("metrics: registry closed")

// DefaultID is the file id of a Registry whose Options.ID is empty.
const DefaultID = "0a"

// Options configures a Registry. The zero value works: a private directory, id "0a".
type Options struct {
	// Dir is the directory of the metric files, shared by every process of one run (the
	// master's run directory). It must exist. Zero: a private directory is created with
	// os.MkdirTemp (under /dev/shm when it exists) and removed again by Close; fine for a
	// single process and for tests.
	Dir string

	// ID names this process's files (counter_<ID>.db, gauge_<mode>_<ID>.db, ...). Letters,
	// digits and '-' only (readers split file names on '_'). Two live Registries must never
	// share a Dir and an ID: their files are locked, so a second one fails (with
	// mmapstore.ErrLocked), in this process or another. Zero: DefaultID ("0a").
	ID string

	// Layout is the file layout written. Zero: mmapstore.Current (client_python >= 0.18).
	// mmapstore.Legacy writes what client_python 0.4-0.17 reads; it has no timestamps, so
	// gauges in the mostrecent modes cannot be registered with it.
	Layout mmapstore.Layout

	// MaxFileSize is the virtual reservation of each file's mapping (mmapstore.Options.MaxSize).
	// Zero: mmapstore's default.
	MaxFileSize int64

	// Logger receives errors that cannot be returned, such as a series that could not be
	// created because the filesystem is full. Zero: errors are only counted
	// (herd_metrics_write_errors_total).
	Logger *slog.Logger

	// Now is the clock for the timestamps of the mostrecent gauge modes and for
	// Gauge.SetToCurrentTime. Zero: time.Now.
	Now func() time.Time
}

// Registry is one process's writer of metrics: it registers metric families and owns this
// process's files in Dir. It is an explicit value, never a global: create one per process
// (per simulated worker in a test), pass it to whatever instruments code, Close it at exit.
//
// A Registry is safe for concurrent use.
type Registry struct {
	dir    string
	id     string
	ownDir bool
	layout mmapstore.Layout
	maxSz  int64
	logger *slog.Logger
	now    func() time.Time
	gath   *DirGatherer

	lastLog     atomic.Int64 // unix nanoseconds of the last logged write error
	unmapped    atomic.Bool  // Unmap was called: writeErrors counts nowhere
	writeErrors *Counter

	mu       sync.Mutex // guards the fields below
	closed   bool
	files    map[string]*mmapstore.File // by file prefix ("counter", "gauge_livesum", ...); nil after Unmap
	families map[string]*desc           // by family name as written in the files
	names    map[string]string          // every name a family exposes -> that family
}

// NewRegistry returns a Registry writing into opts.Dir under opts.ID. It creates this
// process's counter file at once, so an unusable directory is reported here.
func NewRegistry(opts Options) (*Registry, error) {
	r := &Registry{
		dir:      opts.Dir,
		id:       opts.ID,
		layout:   opts.Layout,
		maxSz:    opts.MaxFileSize,
		logger:   opts.Logger,
		now:      opts.Now,
		files:    make(map[string]*mmapstore.File),
		families: make(map[string]*desc),
		names:    make(map[string]string),
	}
	if r.id == "" {
		r.id = DefaultID
	}
	if err := checkID(r.id); err != nil {
		return nil, err
	}
	switch r.layout {
	case mmapstore.Current, mmapstore.Legacy:
	default:
		return nil, fmt.Errorf("metrics: unknown layout %d", r.layout)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.dir == "" {
		base := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		d, err := os.MkdirTemp(base, "herd-metrics-")
		if err != nil {
			return nil, fmt.Errorf("metrics: create private directory: %w", err)
		}
		r.dir, r.ownDir = d, true
	} else {
		st, err := os.Stat(r.dir)
		if err != nil {
			return nil, fmt.Errorf("metrics: directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("metrics: %s is not a directory", r.dir)
		}
	}
	r.gath = NewDirGatherer(r.dir, GathererOpts{Logger: r.logger, OmitSelfMetrics: true})
	c, err := r.NewCounter(CounterOpts{
		Name: "herd_metrics_write_errors_total",
		Help: "Series that could not be created in the metric files (for example, a full filesystem); their updates are dropped.",
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	r.writeErrors = c
	return r, nil
}

// Dir returns the directory of the metric files.
func (r *Registry) Dir() string { return r.dir }

// ID returns this process's file id.
func (r *Registry) ID() string { return r.id }

// Close ends the Registry's use of its directory: it stops checking and opening files and
// releases the reader of Gather. It does not unmap the files: they stay mapped, and locked,
// until the process exits, so that a handler still running when the process closes its
// Registry (an HTTP server's Shutdown returns at its deadline with handlers running) never
// writes to unmapped memory, and every update made through a handle, during or after Close,
// is counted in the file. Series requested after Close are created in the files already
// open (a late request's With counts too); one that would need a new file is a no-op
// handle (ErrClosed). There is nothing to flush: every value is in the shared mapping, which
// the master reads.
//
// Because the files stay locked, a Registry with the same Dir and ID cannot be created again
// in this process after Close; see Unmap. Close removes no metric file (counts of a finished
// process stay in the directory; the master drops its live* gauges with RemoveLiveFiles),
// except that a private directory created by NewRegistry is removed (its files stay mapped
// until Unmap or exit). Calling Close again does nothing and returns nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeLocked()
}

func (r *Registry) closeLocked() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if err := r.gath.Close(); err != nil {
		errs = append(errs, err)
	}
	if r.ownDir {
		if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, fmt.Errorf("metrics: remove private directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Unmap closes the Registry (see Close) and then its files for good: their mappings,
// descriptors and locks. It is for a process that goes on after its Registry and must
// release the files, such as a test that restarts a simulated worker under the same ID.
// Every handle of r must have stopped first: one used concurrently with Unmap may write to
// unmapped memory; one used after it counts nowhere, and series requested after it are
// no-ops (ErrClosed). Calling Unmap again does nothing and returns nil.
func (r *Registry) Unmap() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := []error{r.closeLocked()}
	r.unmapped.Store(true)
	for _, f := range r.files {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("metrics: close %s: %w", f.Path(), err))
		}
	}
	r.files = nil
	return errors.Join(errs...)
}

// Check verifies that every file this Registry writes is still the one in Dir and recreates,
// with its current values, any file that was deleted or replaced (a test fixture cleaning
// the directory, an operator's rm): later writes are never lost in an unlinked file.
// Gather calls it first; a long-running worker whose directory something might clean
// should call it now and then (it costs two stat calls per file).
func (r *Registry) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil // the files are no longer the Registry's concern (see Close)
	}
	var errs []error
	for _, f := range r.files {
		recreated, err := f.Check()
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics: check %s: %w", f.Path(), err))
			continue
		}
		if recreated && r.logger != nil {
			r.logger.Warn("metrics: file was removed or replaced under a live registry; recreated it", "path", f.Path())
		}
	}
	return errors.Join(errs...)
}

// Gather checks this Registry's files (see Check), then reads and merges every file of
// Dir, exactly as the master's DirGatherer does: the view of the whole directory, which in a
// test is what the test's simulated workers wrote. The writer and the reader are one object,
// so a fresh Registry on a fresh directory reads what it wrote.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	return r.gath.Gather()
}

// fileFor returns the open file of the given prefix, opening it on first use.
func (r *Registry) fileFor(prefix string) (*mmapstore.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.files[prefix]; f != nil {
		return f, nil // after Close too: the file stays mapped until Unmap
	}
	if r.closed {
		return nil, ErrClosed
	}
	path := filepath.Join(r.dir, prefix+"_"+r.id+".db")
	f, err := mmapstore.Open(path, mmapstore.Options{Layout: r.layout, MaxSize: r.maxSz})
	if err != nil {
		return nil, fmt.Errorf("metrics: open %s: %w", path, err)
	}
	r.files[prefix] = f
	return f, nil
}

// cell returns the cell of one sample, creating the file and the entry as needed.
func (r *Registry) cell(d *desc, sample string, names, values []string) (*mmapstore.Cell, error) {
	f, err := r.fileFor(d.filePrefix())
	if err != nil {
		return nil, err
	}
	c, err := f.Cell(mmapstore.EncodeKey(d.family, sample, names, values, d.help))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: create series in %s: %w", d.name, f.Path(), err)
	}
	return c, nil
}

// writeError counts and (at most once a second) logs an error that a handle cannot return.
func (r *Registry) writeError(err error) {
	if r.writeErrors != nil && !r.unmapped.Load() {
		r.writeErrors.Inc()
	}
	if r.logger == nil || errors.Is(err, ErrClosed) { // expected while a process exits
		return
	}
	now := time.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(time.Second) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.logger.Error("metrics: series dropped", "err", err)
}
