package prefork

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

// Recycling by resident memory and by age (Config.MaxWorkerRSS, MaxWorkerAge): like a
// worker that asked to retire after MaxRequests, the worker gets a successor in the free
// lane and is drained once the successor is ready. Both exits are planned (ExitRSS,
// ExitAge): logged, never counted toward CrashLimit.

// checkRecycle validates the recycling settings.
func checkRecycle(c *settings) error {
	if c.MaxWorkerRSS < 0 {
		return configErr("max worker RSS must not be negative (got %d)", c.MaxWorkerRSS)
	}
	if c.MaxWorkerAge < 0 {
		return configErr("max worker age must not be negative (got %v)", c.MaxWorkerAge)
	}
	if c.MaxWorkerAgeJitter < 0 {
		return configErr("max worker age jitter must not be negative (got %v)", c.MaxWorkerAgeJitter)
	}
	if c.MaxWorkerAgeJitter > 0 && c.MaxWorkerAge == 0 {
		return configErr("max worker age jitter needs max worker age")
	}
	return nil
}

// maxAge returns a new worker's age limit, jitter included, or 0 for none.
func (s *supervisor) maxAge() time.Duration {
	if s.cfg.MaxWorkerAge == 0 {
		return 0
	}
	return s.cfg.MaxWorkerAge + rand.N(s.cfg.MaxWorkerAgeJitter+1)
}

// recyclable reports whether w may be marked for a planned replacement now.
func (s *supervisor) recyclable(w *worker) bool {
	sl := w.slot
	return !s.stopping && sl.active == w && sl.replace == "" && w.state == StateReady
}

// checkAges marks for replacement the workers that reached their age limit.
func (s *supervisor) checkAges(now time.Time) {
	for _, w := range s.workers {
		if w.maxAge > 0 && !now.Before(w.started.Add(w.maxAge)) && s.recyclable(w) {
			s.log.Info("worker reached its maximum age; replacing", append(w.attrs(), "age", now.Sub(w.started).Round(time.Millisecond), "max_age", w.maxAge.Round(time.Millisecond))...)
			w.slot.replace = ExitAge
		}
	}
}

// ageDeadlines passes earlier the time each replaceable worker reaches its age limit.
func (s *supervisor) ageDeadlines(earlier func(time.Time)) {
	for _, w := range s.workers {
		if w.maxAge > 0 && s.recyclable(w) {
			earlier(w.started.Add(w.maxAge))
		}
	}
}

// checkRSS reads w's resident memory (at each heartbeat) and marks w for replacement when
// it is above the limit.
func (s *supervisor) checkRSS(w *worker) {
	rss, ok := s.readRSS(w.pid)
	if !ok {
		return
	}
	w.rss = rss
	if limit := s.cfg.MaxWorkerRSS; limit > 0 && rss > uint64(limit) && s.recyclable(w) {
		s.log.Info("worker resident memory above the limit; replacing", append(w.attrs(), "rss", rss, "max_rss", limit)...)
		w.slot.replace = ExitRSS
	}
}

// readRSS returns the resident memory of process pid from /proc/PID/statm (its second
// field, in pages).
func (s *supervisor) readRSS(pid int) (uint64, bool) {
	b, err := s.env.readFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}
