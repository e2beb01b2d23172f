package server

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/mmapstore"
	"github.com/herdhttp/herd/prefork"
)

// Canary reloads (-reload-canary). A reload (SIGHUP) replaces one worker first and
// watches it for the window; then canaryJudge compares what that canary served in its
// window with what the old workers served in the same time, from each worker's own metric
// files in the run directory (<type>_<id>.db), read directly, not through the merge:
//
//   - its share of 5xx responses (http_requests_total, code 5xx) may be at most
//     -canary-max-5xx-ratio (default 0.01) above the others' share;
//   - its p99 latency (from the http_request_duration_seconds buckets, interpolated as
//     histogram_quantile does) may be at most -canary-max-p99-ratio (default 2) times
//     the others'.
//
// Counts are taken at the start of the window and subtracted: a worker's files continue its
// predecessor's in the same lane. A canary that served nothing in its window passes (there
// is nothing to compare); with no other worker its 5xx share is compared with zero and its
// latency is not judged. prefork rolls a failed canary back (see prefork's Canary reloads).
//
// The outcome of every reload is counted:
//
//	herd_reloads_total{result}  counter: "ok" (rolled out), "rolled_back" (the canary was
//	                            judged worse, or exited, hung or failed to boot), "aborted"
//	                            (no canary: a new worker failed to boot; or the new executable
//	                            could not be opened)

// CanaryConfig configures canary reloads.
type CanaryConfig struct {
	// Window is how long a reload's canary serves before it is judged; 0 or Off (default): no
	// canary, a reload replaces every worker in turn.
	Window time.Duration
	// Max5xxRatio is how much higher the canary's share of 5xx responses may be than the
	// other workers' (0.01: one percentage point); zero: 0.01.
	Max5xxRatio float64
	// MaxP99Ratio is how many times the other workers' p99 latency the canary's may be;
	// zero: 2.
	MaxP99Ratio float64
}

const (
	defaultCanaryMax5xxRatio = 0.01
	defaultCanaryMaxP99Ratio = 2.0
)

func (c CanaryConfig) withDefaults() CanaryConfig {
	if c.Window <= 0 {
		c.Window = Off // no canary
	}
	if c.Max5xxRatio == 0 {
		c.Max5xxRatio = defaultCanaryMax5xxRatio
	}
	if c.MaxP99Ratio == 0 {
		c.MaxP99Ratio = defaultCanaryMaxP99Ratio
	}
	return c
}

// check validates c (with its defaults applied).
func (c CanaryConfig) check() error {
	c = c.withDefaults()
	if c.Max5xxRatio < 0 || c.Max5xxRatio > 1 || math.IsNaN(c.Max5xxRatio) {
		return fmt.Errorf("-canary-max-5xx-ratio: must be between 0 and 1, got %v", c.Max5xxRatio)
	}
	if !(c.MaxP99Ratio >= 1) || math.IsInf(c.MaxP99Ratio, 1) {
		return fmt.Errorf("-canary-max-p99-ratio: must be 1 or more, got %v", c.MaxP99Ratio)
	}
	return nil
}

// canaryJudge is the prefork.CanaryJudge described above, for the run directory dir.
type canaryJudge struct {
	dir  string
	cfg  CanaryConfig
	base map[string]served // by file id, at the start of the window
}

func newCanaryJudge(dir string, cfg CanaryConfig) *canaryJudge {
	return &canaryJudge{dir: dir, cfg: cfg.withDefaults()}
}

// served is what one worker's files say it served.
type served struct {
	requests, errors float64             // http_requests_total; those with a 5xx code
	buckets          map[float64]float64 // http_request_duration_seconds, per bucket (not cumulative), by upper bound
	unreadable       []string            // files that exist but could not be read
}

// Start remembers the counts of the canary and the others.
func (j *canaryJudge) Start(canary prefork.WorkerInfo, others []prefork.WorkerInfo) {
	j.base = map[string]served{canary.ID: readServed(j.dir, canary.ID)}
	for _, w := range others {
		j.base[w.ID] = readServed(j.dir, w.ID)
	}
}

// Judge compares what the canary and the others served since Start.
func (j *canaryJudge) Judge(canary prefork.WorkerInfo, others []prefork.WorkerInfo) (bool, string) {
	c := readServed(j.dir, canary.ID).since(j.base[canary.ID])
	var o served
	for _, w := range others {
		if b, ok := j.base[w.ID]; ok { // a worker started during the window has no baseline
			o.add(readServed(j.dir, w.ID).since(b))
		}
	}
	return j.verdict(c, o, len(others))
}

func (j *canaryJudge) verdict(c, o served, others int) (bool, string) {
	if len(c.unreadable) > 0 {
		return false, fmt.Sprintf("the canary's metric files cannot be read: %v", c.unreadable)
	}
	if c.requests == 0 {
		return true, "the canary served no request in its window: nothing to compare"
	}
	ok := true
	cr, or := c.errors/c.requests, 0.0
	if o.requests > 0 {
		or = o.errors / o.requests
	}
	why := fmt.Sprintf("5xx: canary %g of %g (%.2f%%), others %g of %g (%.2f%%), allowed %.2f points more",
		c.errors, c.requests, 100*cr, o.errors, o.requests, 100*or, 100*j.cfg.Max5xxRatio)
	if cr > or+j.cfg.Max5xxRatio {
		ok = false
		why = "worse " + why
	}
	cp, cn := quantile(0.99, c.buckets)
	op, on := quantile(0.99, o.buckets)
	switch {
	case cn == 0 || on == 0:
		why += fmt.Sprintf("; p99: not compared (%g canary and %g other observations)", cn, on)
	case cp > op*j.cfg.MaxP99Ratio:
		ok = false
		why += fmt.Sprintf("; worse p99: canary %s, others %s, allowed %g times", secs(cp), secs(op), j.cfg.MaxP99Ratio)
	default:
		why += fmt.Sprintf("; p99: canary %s, others %s, allowed %g times", secs(cp), secs(op), j.cfg.MaxP99Ratio)
	}
	if others == 0 {
		why += " (no other worker: 5xx compared with none)"
	}
	return ok, why
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

// readServed reads the counter and histogram files of worker id in dir. A file that does not
// exist is no request; one that cannot be read is listed.
func readServed(dir, id string) served {
	s := served{buckets: map[float64]float64{}}
	for _, typ := range []string{"counter", "histogram"} {
		path := filepath.Join(dir, mmapstore.FileName(typ, "", id))
		file, err := mmapstore.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			s.unreadable = append(s.unreadable, err.Error())
			continue
		}
		for _, smp := range file.Samples {
			switch smp.Key.Sample {
			case middleware.DefaultRequestsName:
				s.requests += smp.Value
				if code := label(smp.Key, "code"); len(code) == 3 && code[0] == '5' {
					s.errors += smp.Value
				}
			case middleware.DefaultDurationName + "_bucket":
				if le, err := strconv.ParseFloat(label(smp.Key, "le"), 64); err == nil {
					s.buckets[le] += smp.Value
				}
			}
		}
	}
	return s
}

func label(k *mmapstore.Key, name string) string {
	for _, l := range k.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// since returns s minus the earlier reading b.
func (s served) since(b served) served {
	out := served{
		requests:   max(0, s.requests-b.requests),
		errors:     max(0, s.errors-b.errors),
		buckets:    map[float64]float64{},
		unreadable: s.unreadable,
	}
	for le, v := range s.buckets {
		out.buckets[le] = max(0, v-b.buckets[le])
	}
	return out
}

func (s *served) add(o served) {
	s.requests += o.requests
	s.errors += o.errors
	if s.buckets == nil {
		s.buckets = map[float64]float64{}
	}
	for le, v := range o.buckets {
		s.buckets[le] += v
	}
}

// quantile returns the q-quantile of the per-bucket counts (by upper bound) as Prometheus'
// histogram_quantile estimates it: linear within the bucket holding the rank, the first
// bucket starting at 0, the highest finite bound for a rank in the +Inf bucket. It also
// returns the number of observations (0: no estimate).
func quantile(q float64, buckets map[float64]float64) (float64, float64) {
	bounds := make([]float64, 0, len(buckets))
	total := 0.0
	for le, v := range buckets {
		bounds = append(bounds, le)
		total += v
	}
	if total == 0 {
		return 0, 0
	}
	slices.Sort(bounds)
	rank := q * total
	cum, lower := 0.0, 0.0
	for i, le := range bounds {
		n := buckets[le]
		if cum+n >= rank && n > 0 {
			if math.IsInf(le, 1) {
				if i == 0 {
					return 0, total
				}
				return bounds[i-1], total
			}
			return lower + (le-lower)*(rank-cum)/n, total
		}
		cum += n
		lower = le
	}
	return lower, total
}

// reloadMetrics gathers herd_reloads_total from counters (a master's Counters).
func reloadMetrics(counters func() prefork.Counters) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		c := counters()
		name, help, label := "herd_reloads_total", "Reloads (SIGHUP) that ended, by result: ok, rolled_back (the canary was worse), aborted.", "result"
		f := &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_COUNTER.Enum()}
		for _, r := range []struct {
			result string
			n      uint64
		}{{"ok", c.ReloadsOK}, {"rolled_back", c.ReloadsRolledBack}, {"aborted", c.ReloadsAborted}} {
			v, result := float64(r.n), r.result
			f.Metric = append(f.Metric, &dto.Metric{
				Label:   []*dto.LabelPair{{Name: &label, Value: &result}},
				Counter: &dto.Counter{Value: &v},
			})
		}
		return []*dto.MetricFamily{f}, nil
	})
}
