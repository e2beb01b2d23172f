package middleware

import (
	"strconv"

	"github.com/herdhttp/herd/metrics"
)

// methodSeries holds the metric handles of one (route, method): its
// histograms and one counter per status code seen so far. It is immutable
// once published in route.methods; a new code publishes a copy.
type methodSeries struct {
	duration *metrics.Histogram
	size     *metrics.Histogram // nil unless Opts.ResponseSize
	codes    []codeSeries
}

type codeSeries struct {
	code     int
	requests *metrics.Counter
}

// series returns the handles of (rt, method index mi, code), or a nil
// counter when they have not been created yet. It takes no lock and
// allocates nothing.
func (rt *route) series(mi, code int) (*methodSeries, *metrics.Counter) {
	s := rt.methods[mi].Load()
	if s == nil {
		return nil, nil
	}
	for i := range s.codes {
		if s.codes[i].code == code {
			return s, s.codes[i].requests
		}
	}
	return s, nil
}

// newSeries creates the handles of (rt, mi, code), the first time they are
// needed. The number of series is bounded by routes x methods x codes.
//
// A series that cannot be created (a full filesystem, say) is not cached:
// the metrics package counts and logs the failure and gives a handle that
// does nothing, and the next request tries again.
func (in *instrumenter) newSeries(rt *route, mi int, ml string, code int) (*methodSeries, *metrics.Counter) {
	in.mu.Lock()
	defer in.mu.Unlock()
	old, c := rt.series(mi, code)
	if c != nil {
		return old, c
	}
	s := new(methodSeries)
	ok := true
	if old != nil {
		*s = *old
	} else {
		s.duration, ok = histogram(in.duration, ml, rt.name)
		if in.size != nil {
			var sok bool
			s.size, sok = histogram(in.size, ml, rt.name)
			ok = ok && sok
		}
	}
	c, cok := counter(in.requests, ml, rt.name, strconv.Itoa(code))
	// Clipped: the published slice is read concurrently and must not be
	// appended to in place.
	s.codes = append(s.codes[:len(s.codes):len(s.codes)], codeSeries{code: code, requests: c})
	if ok && cok {
		rt.methods[mi].Store(s)
	}
	return s, c
}

// counter returns v's series of values and whether it is a working handle.
func counter(v *metrics.CounterVec, values ...string) (*metrics.Counter, bool) {
	c, err := v.Get(values...)
	if err != nil {
		// With counts and logs the error, and tries once more.
		return v.With(values...), false
	}
	return c, true
}

func histogram(v *metrics.HistogramVec, values ...string) (*metrics.Histogram, bool) {
	h, err := v.Get(values...)
	if err != nil {
		return v.With(values...), false
	}
	return h, true
}
