package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/herdhttp/herd/mmapstore"
)

// GaugeMode says how the values that several processes hold for one gauge series are merged.
// The modes are client_python's multiprocess_mode values; the live* ones forget a process
// as soon as it has died (the master calls RemoveLiveFiles when it reaps a worker), the
// others keep its last value forever.
type GaugeMode string

const (
	// GaugeAll keeps one series per process, labelled pid="<file id>". The default.
	GaugeAll GaugeMode = "all"
	// GaugeLiveAll is GaugeAll over live processes only.
	GaugeLiveAll GaugeMode = "liveall"
	// GaugeMin is the minimum over all processes.
	GaugeMin GaugeMode = "min"
	// GaugeLiveMin is the minimum over live processes.
	GaugeLiveMin GaugeMode = "livemin"
	// GaugeMax is the maximum over all processes.
	GaugeMax GaugeMode = "max"
	// GaugeLiveMax is the maximum over live processes.
	GaugeLiveMax GaugeMode = "livemax"
	// GaugeSum is the sum over all processes.
	GaugeSum GaugeMode = "sum"
	// GaugeLiveSum is the sum over live processes: in-flight requests, open connections.
	GaugeLiveSum GaugeMode = "livesum"
	// GaugeMostRecent is the value most recently set by any process; a series never set
	// is not exposed. Needs the Current layout (timestamps).
	GaugeMostRecent GaugeMode = "mostrecent"
	// GaugeLiveMostRecent is GaugeMostRecent over live processes.
	GaugeLiveMostRecent GaugeMode = "livemostrecent"
)

// GaugeModes lists every mode.
func GaugeModes() []GaugeMode {
	return []GaugeMode{GaugeAll, GaugeLiveAll, GaugeMin, GaugeLiveMin, GaugeMax, GaugeLiveMax,
		GaugeSum, GaugeLiveSum, GaugeMostRecent, GaugeLiveMostRecent}
}

func (m GaugeMode) valid() bool {
	for _, x := range GaugeModes() {
		if m == x {
			return true
		}
	}
	return false
}

func (m GaugeMode) mostRecent() bool { return m == GaugeMostRecent || m == GaugeLiveMostRecent }

// GaugeOpts describes a gauge family.
type GaugeOpts struct {
	Name string
	Help string
	// Mode is how processes' values are merged. Zero: GaugeAll. When processes write one
	// gauge in different modes (a reload to a binary that changed it), the mode first in
	// alphabetical order among the files present wins (see the package documentation).
	Mode        GaugeMode
	ConstLabels map[string]string
}

// GaugeVec is a gauge family with variable labels. Safe for concurrent use.
type GaugeVec struct {
	v *vec[Gauge]
}

// Gauge is one gauge series. Its methods are safe for concurrent use. Outside the mostrecent
// modes they are lock-free and allocate nothing; in the mostrecent modes every change also
// stores the time of the change (Inc, Dec and Add then take a per-series lock).
type Gauge struct {
	cell *mmapstore.Cell // nil: no-op handle
	now  func() time.Time
	mr   bool       // a mostrecent mode
	mu   sync.Mutex // serialises read-modify-write in mostrecent modes
}

// NewGaugeVec registers a gauge family with the given variable label names. The label name
// "pid" is reserved: the merge adds it in the all modes and drops it in the others.
func (r *Registry) NewGaugeVec(o GaugeOpts, labelNames ...string) (*GaugeVec, error) {
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	if o.Mode == "" {
		o.Mode = GaugeAll
	}
	if !o.Mode.valid() {
		return nil, fmt.Errorf("metrics: %s: unknown gauge mode %q (want one of %q)", o.Name, o.Mode, GaugeModes())
	}
	if o.Mode.mostRecent() && r.layout == mmapstore.Legacy {
		return nil, fmt.Errorf("metrics: %s: gauge mode %s needs timestamps, which the Legacy file layout does not have", o.Name, o.Mode)
	}
	if err := checkLabelNames(o.Name, labelNames, o.ConstLabels, "pid"); err != nil {
		return nil, err
	}
	d := newDesc(typeGauge, o.Name, o.Help, o.ConstLabels, labelNames)
	d.mode = o.Mode
	gv := &GaugeVec{}
	gv.v = newVec(r, d, func(names, values []string) (*Gauge, error) {
		c, err := r.cell(d, d.family, names, values)
		if err != nil {
			return nil, err
		}
		return &Gauge{cell: c, now: r.now, mr: d.mode.mostRecent()}, nil
	}, &Gauge{})
	d.vec = gv
	if err := r.register(d); err != nil {
		return nil, err
	}
	return gv, nil
}

// MustNewGaugeVec is NewGaugeVec that panics on error, for setup code.
func (r *Registry) MustNewGaugeVec(o GaugeOpts, labelNames ...string) *GaugeVec {
	v, err := r.NewGaugeVec(o, labelNames...)
	if err != nil {
		panic(err)
	}
	return v
}

// NewGauge registers a gauge family without variable labels and returns its one series.
func (r *Registry) NewGauge(o GaugeOpts) (*Gauge, error) {
	v, err := r.NewGaugeVec(o)
	if err != nil {
		return nil, err
	}
	return v.Get()
}

// MustNewGauge is NewGauge that panics on error, for setup code.
func (r *Registry) MustNewGauge(o GaugeOpts) *Gauge {
	g, err := r.NewGauge(o)
	if err != nil {
		panic(err)
	}
	return g
}

// With returns the series of the given label values; see CounterVec.With.
func (v *GaugeVec) With(labelValues ...string) *Gauge { return v.v.with(labelValues) }

// Get is With that returns the error instead of counting it.
func (v *GaugeVec) Get(labelValues ...string) (*Gauge, error) { return v.v.get(labelValues) }

// Set sets the value.
func (g *Gauge) Set(v float64) {
	if g.cell == nil {
		return
	}
	if g.mr {
		g.mu.Lock()
		g.cell.SetWithTimestamp(v, unixSeconds(g.now()))
		g.mu.Unlock()
		return
	}
	g.cell.Set(v)
}

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) {
	if g.cell == nil {
		return
	}
	if g.mr {
		g.mu.Lock()
		g.cell.SetWithTimestamp(g.cell.Load()+v, unixSeconds(g.now()))
		g.mu.Unlock()
		return
	}
	g.cell.Add(v)
}

// Inc adds 1.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.Add(-1) }

// Sub subtracts v.
func (g *Gauge) Sub(v float64) { g.Add(-v) }

// SetToCurrentTime sets the value to the current Unix time in seconds.
func (g *Gauge) SetToCurrentTime() {
	if g.cell == nil {
		return
	}
	g.Set(unixSeconds(g.now()))
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
