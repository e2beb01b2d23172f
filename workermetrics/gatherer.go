package workermetrics

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/internal/expo"
	"github.com/herdhttp/herd/metrics"
)

// DefaultTimeout is how long Gatherer waits for the workers' fresh
// snapshots when GathererOpts.Timeout is zero.
const DefaultTimeout = 250 * time.Millisecond

// DefaultPerWorker are the name prefixes of the per-process collectors
// (client_golang's Go and process collectors), whose families get one
// series per worker whatever their type.
var DefaultPerWorker = []string{"go_", "process_"}

// GathererOpts configures a Gatherer. The zero value works.
type GathererOpts struct {
	// Timeout bounds the wait for fresh snapshots, from the start of a
	// scrape; a worker that has not answered by then is served from its
	// snapshot file. Default DefaultTimeout.
	Timeout time.Duration
	// PerWorker lists name prefixes of families served per worker (with a
	// worker label) whatever their type. Nil: DefaultPerWorker; empty:
	// none.
	PerWorker []string
	// Logger receives a warning the first time something goes wrong with
	// a file or a worker, per file and message. Zero: only counted.
	Logger *slog.Logger
}

// Gatherer is the master's side: a metrics.Gatherer that returns herd's
// families (those of the gatherer it wraps) and the merge of what every
// worker publishes into one directory. See the package documentation.
//
// A Gatherer is safe for concurrent use; scrapes are serialised.
type Gatherer struct {
	dir  string
	herd metrics.Gatherer
	opts GathererOpts

	mu       sync.Mutex // guards the fields below; held for a whole scrape
	merger   merger
	decoders map[string]*decoder  // live instance -> its decoder
	conns    map[string]net.Conn  // live instance -> the connection kept from the last scrape
	last     map[string]*snapshot // live instance -> the newest snapshot seen
	folded   map[string]int       // instance folded into dead -> its pid
	dead     []family             // dead workers' counters and histograms, summed
	nDead    int                  // workers folded into dead
	logged   map[string]string    // what -> the last message logged
	les      expo.Bounds          // rendered bucket bounds (see renderer)
}

type snapshot struct {
	seq  uint64
	fams []family
}

// NewGatherer returns a Gatherer of herd's families (herd may be nil) and of
// the snapshots in dir, which need not exist yet.
func NewGatherer(dir string, herd metrics.Gatherer, opts GathererOpts) *Gatherer {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PerWorker == nil {
		opts.PerWorker = DefaultPerWorker
	}
	return &Gatherer{dir: dir, herd: herd, opts: opts,
		merger:   merger{perWorker: opts.PerWorker},
		decoders: map[string]*decoder{}, conns: map[string]net.Conn{}, last: map[string]*snapshot{}, folded: map[string]int{}, logged: map[string]string{}}
}

// files is what the directory holds of one worker process.
type files struct {
	inst      instance
	snap, tmp bool
	sock      bool
}

// fetched is what a scrape learnt of one worker process.
type fetched struct {
	files
	dec   *decoder
	conn  net.Conn  // the connection kept from the last scrape, and for the next
	dead  bool      // its socket refuses connections, or is gone
	fresh *snapshot // its answer, if it answered in time
	file  *snapshot // its snapshot file, read when it did not answer
	err   error     // why it did not answer; why its file was unreadable
	bad   bool      // its file was unreadable
}

// Gather returns herd's families and the workers' merged, sorted by name.
// Its error is the wrapped gatherer's: problems with the workers' snapshots
// are counted in herd_export_* families and logged, never an error.
func (g *Gatherer) Gather() ([]*dto.MetricFamily, error) {
	start := time.Now()
	// Herd's families first, outside g.mu: metrics.Handler holds a
	// DirGatherer's lock while it renders, then calls RenderFamilies, which
	// takes g.mu; gathering the DirGatherer under g.mu could deadlock.
	var herdFams []*dto.MetricFamily
	var herdErr error
	if g.herd != nil {
		herdFams, herdErr = g.herd.Gather()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.collectLocked(start)
	g.merger.reserve(familyTypes(herdFams))
	exported, drops := g.merger.merge(c.srcs, g.dead)
	out := make([]*dto.MetricFamily, 0, len(herdFams)+len(exported)+6)
	out = append(out, herdFams...)
	out = append(out, exported...)
	out = append(out, g.selfMetrics(c.fresh, c.stale, c.skipped, drops, time.Since(start))...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, herdErr
}

// collected is what a scrape collected of the workers.
type collected struct {
	srcs                  []source // the live workers' snapshots
	fresh, stale, skipped int      // counts for the self metrics
}

// collectLocked fetches every live worker's snapshot, folds the dead ones
// into the totals and returns the live ones. The caller holds g.mu.
func (g *Gatherer) collectLocked(start time.Time) collected {
	procs, foldedSeen, skipped := g.list()
	got := make([]fetched, len(procs))
	var wg sync.WaitGroup
	for i, f := range procs {
		got[i].files = f
		got[i].conn = g.conns[f.inst.name]
		got[i].dec = g.decoders[f.inst.name]
		if got[i].dec == nil {
			got[i].dec = newDecoder(f.inst.id, g.merger.perWorkerFamily)
			g.decoders[f.inst.name] = got[i].dec
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.fetch(&got[i], start.Add(g.opts.Timeout))
		}()
	}
	wg.Wait()
	for i := range got {
		if c := got[i].conn; c != nil {
			g.conns[got[i].inst.name] = c
		} else {
			delete(g.conns, got[i].inst.name)
		}
	}

	var srcs []source
	fresh, stale := 0, 0
	seen := make(map[string]bool, len(got))
	for i := range got {
		f := &got[i]
		name := f.inst.name
		seen[name] = true
		if f.bad {
			skipped++
			g.logOnce(name, "workermetrics: unreadable snapshot", f.err)
		}
		best := g.last[name]
		for _, s := range []*snapshot{f.fresh, f.file} {
			if s != nil && (best == nil || s.seq > best.seq) {
				best = s
			}
		}
		if f.dead {
			g.foldLocked(f.inst, best)
			continue
		}
		if best == nil {
			continue // started, nothing written yet
		}
		g.last[name] = best
		if best == f.fresh {
			fresh++
		} else {
			stale++
			if f.err != nil {
				g.logOnce(name, "workermetrics: no fresh snapshot, serving the last one", f.err)
			}
		}
		srcs = append(srcs, source{worker: f.inst.id, started: f.inst.started, fams: best.fams, perWorker: true})
	}
	// A worker whose files vanished (removed by hand) is taken for dead.
	for name, s := range g.last {
		if !seen[name] {
			in, _, _ := parseInstance(name + snapSuffix)
			g.foldLocked(in, s)
		}
	}
	g.pruneFolded(foldedSeen)
	markDuplicateIDs(srcs)
	return collected{srcs: srcs, fresh: fresh, stale: stale, skipped: skipped}
}

// list reads the directory: the worker processes whose files it holds, the
// folded ones that still have files, and the number of entries that are not
// a worker's file.
func (g *Gatherer) list() (procs []files, foldedSeen map[string]bool, skipped int) {
	foldedSeen = map[string]bool{}
	ents, err := os.ReadDir(g.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.logOnce("dir", "workermetrics: reading the snapshot directory", err)
		}
		return nil, foldedSeen, 0
	}
	byName := map[string]*files{}
	var order []string
	for _, e := range ents {
		in, suffix, ok := parseInstance(e.Name())
		if !ok {
			skipped++
			g.logOnce(e.Name(), "workermetrics: skipped a foreign file", fmt.Errorf("not a worker's snapshot or socket: %s", filepath.Join(g.dir, e.Name())))
			continue
		}
		if _, done := g.folded[in.name]; done {
			// A folded worker's files (a removal failed, or a process
			// whose socket was removed under it writes again): remove
			// them, never count the same worker twice.
			foldedSeen[in.name] = true
			g.removeFiles(in)
			continue
		}
		f := byName[in.name]
		if f == nil {
			f = &files{inst: in}
			byName[in.name] = f
			order = append(order, in.name)
		}
		switch suffix {
		case snapSuffix:
			f.snap = e.Type().IsRegular()
		case tmpSuffix:
			f.tmp = true
		case sockSuffix:
			f.sock = e.Type()&fs.ModeSocket != 0
		}
	}
	procs = make([]files, len(order))
	for i, n := range order {
		procs[i] = *byName[n]
	}
	return procs, foldedSeen, skipped
}

// fetch asks one worker process for a fresh snapshot until deadline, and
// reads its file when it does not answer.
func (g *Gatherer) fetch(f *fetched, deadline time.Time) {
	if !f.sock {
		f.dead = true
		if f.conn != nil {
			f.conn.Close()
			f.conn = nil
		}
	} else {
		f.fresh, f.dead, f.err = g.ask(f, deadline)
	}
	if f.fresh != nil || !f.snap {
		return
	}
	seq, fams, err := readSnapshotFile(filepath.Join(g.dir, f.inst.name+snapSuffix), f.dec)
	switch {
	case err == nil:
		f.file = &snapshot{seq, fams}
	case errors.Is(err, fs.ErrNotExist):
	default:
		f.bad, f.err = true, err
	}
}

// ask asks a worker for a fresh snapshot: with a request byte on the
// connection kept from the last scrape, or on a new connection, which the
// worker answers at once. The connection is kept in f.conn for the next
// scrape when the answer was read whole. dead is true when nothing listens
// on the socket any more.
func (g *Gatherer) ask(f *fetched, deadline time.Time) (s *snapshot, dead bool, err error) {
	if c := f.conn; c != nil {
		f.conn = nil
		c.SetDeadline(deadline)
		if _, err = c.Write([]byte{1}); err == nil {
			if s, err = readAnswer(c, f.dec); err == nil {
				f.conn = c
				return s, false, nil
			}
		}
		c.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, false, err // slow: served from its file
		}
		// Broken (the worker stopped, or answers once per connection, as
		// a worker of an older binary does): connect again.
	}
	var c net.Conn
	err = withSockPath(g.dir, f.inst.name+sockSuffix, func(path string) error {
		var err error
		c, err = net.DialTimeout("unix", path, time.Until(deadline))
		return err
	})
	if err != nil {
		return nil, errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT), err
	}
	c.SetDeadline(deadline)
	if s, err = readAnswer(c, f.dec); err != nil {
		c.Close()
		return nil, false, err
	}
	f.conn = c
	return s, false, nil
}

func readAnswer(c net.Conn, d *decoder) (*snapshot, error) {
	seq, fams, err := readSnapshot(c, d)
	if err != nil {
		return nil, err
	}
	return &snapshot{seq, fams}, nil
}

// foldLocked adds a dead worker's last snapshot to the dead workers'
// totals, once, and removes its files.
func (g *Gatherer) foldLocked(in instance, last *snapshot) {
	if last != nil {
		g.dead = g.merger.fold(g.dead, last.fams)
	}
	g.nDead++
	g.folded[in.name] = in.pid
	if c := g.conns[in.name]; c != nil {
		c.Close()
		delete(g.conns, in.name)
	}
	delete(g.last, in.name)
	delete(g.decoders, in.name)
	g.removeFiles(in)
}

func (g *Gatherer) removeFiles(in instance) {
	for _, s := range [...]string{snapSuffix, tmpSuffix, sockSuffix} {
		if err := os.Remove(filepath.Join(g.dir, in.name+s)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			g.logOnce(in.name+s, "workermetrics: removing a dead worker's file", err)
		}
	}
}

// pruneFolded forgets folded workers that had no file left in this
// scrape's listing and whose process is gone: nothing can bring their files
// back, so the set stays as small as the number of live processes.
func (g *Gatherer) pruneFolded(listed map[string]bool) {
	for name, pid := range g.folded {
		if !listed[name] && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			delete(g.folded, name)
		}
	}
}

// markDuplicateIDs keeps the per-worker series of only the newest process
// of an id (by the start time in its name) when two live ones share it.
func markDuplicateIDs(srcs []source) {
	sort.SliceStable(srcs, func(i, j int) bool {
		if srcs[i].worker != srcs[j].worker {
			return srcs[i].worker < srcs[j].worker
		}
		return srcs[i].started < srcs[j].started
	})
	for i := 1; i < len(srcs); i++ {
		if srcs[i].worker == srcs[i-1].worker {
			srcs[i-1].perWorker = false
		}
	}
}

// logOnce logs err under msg unless it is what was last logged for key.
func (g *Gatherer) logOnce(key, msg string, err error) {
	if g.opts.Logger == nil {
		return
	}
	text := msg + ": " + err.Error()
	if g.logged[key] == text {
		return
	}
	if len(g.logged) > 10000 {
		clear(g.logged)
	}
	g.logged[key] = text
	g.opts.Logger.Warn(msg, "key", key, "err", err)
}

// The Gatherer's own families.
const (
	workersName  = "herd_export_workers"
	foldedName   = "herd_export_folded_workers_total"
	droppedName  = "herd_export_families_dropped"
	skippedName  = "herd_export_snapshots_skipped"
	durationName = "herd_export_scrape_duration_seconds"
)

func (g *Gatherer) selfMetrics(fresh, stale, skipped int, drops [numDropReasons]int, took time.Duration) []*dto.MetricFamily {
	workers := newFamily(workersName, "Live workers whose exported metrics the last scrape served, by source: fresh (answered in time) or snapshot (their last snapshot file).", dto.MetricType_GAUGE)
	workers.Metric = []*dto.Metric{
		labelled(dto.MetricType_GAUGE, "source", "fresh", float64(fresh)),
		labelled(dto.MetricType_GAUGE, "source", "snapshot", float64(stale)),
	}
	folded := newFamily(foldedName, "Dead workers whose last exported counters and histograms were folded into the totals.", dto.MetricType_COUNTER)
	folded.Metric = []*dto.Metric{labelled(dto.MetricType_COUNTER, "", "", float64(g.nDead))}
	dropped := newFamily(droppedName, "Exported metric families left out of the last scrape, by reason: herd_name (clashes with a herd metric), type_conflict (different types in two workers), worker_label (a per-worker family with its own worker label), invalid.", dto.MetricType_GAUGE)
	for r := range numDropReasons {
		dropped.Metric = append(dropped.Metric, labelled(dto.MetricType_GAUGE, "reason", dropReasonNames[r], float64(drops[r])))
	}
	skippedFam := newFamily(skippedName, "Files of the snapshot directory the last scrape skipped because they were unreadable, corrupt or foreign (see the log).", dto.MetricType_GAUGE)
	skippedFam.Metric = []*dto.Metric{labelled(dto.MetricType_GAUGE, "", "", float64(skipped))}
	duration := newFamily(durationName, "Time the last scrape took to collect and merge the workers' exported metrics.", dto.MetricType_GAUGE)
	duration.Metric = []*dto.Metric{labelled(dto.MetricType_GAUGE, "", "", took.Seconds())}
	return []*dto.MetricFamily{workers, folded, dropped, skippedFam, duration}
}

func newFamily(name, help string, t dto.MetricType) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: t.Enum()}
}

// labelled is one sample, with one label unless name is empty.
func labelled(t dto.MetricType, name, value string, v float64) *dto.Metric {
	m := &dto.Metric{}
	if name != "" {
		m.Label = []*dto.LabelPair{{Name: &name, Value: &value}}
	}
	if t == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return m
}
