package prefork

import "time"

// Changing the number of slots (SIGTTIN, SIGTTOU, Master.SetWorkers).

// setWorkers changes the number of slots.
func (s *supervisor) setWorkers(n int) {
	if s.stopping {
		return
	}
	if n < 1 || n > maxWorkers {
		s.log.Warn("ignoring worker count out of range", "workers", n)
		return
	}
	for i := range n {
		if i == len(s.slots) {
			s.slots = append(s.slots, &slot{index: i, lastLane: 'a'})
		}
		sl := s.slots[i]
		if sl.fds != nil {
			continue
		}
		if s.m.shared != nil {
			sl.fds = s.m.shared
			continue
		}
		s.reserve.release()
		fds, err := openSlotSockets(s.cfg.addrs, s.m.backlog())
		s.reserve.fill()
		if err != nil {
			if noFDs(err) {
				s.counters.FDExhausted++
			}
			s.log.Error("cannot add worker slot", "worker", i, "err", err)
			n = i
			break
		}
		s.m.setSlotFDs(i, fds)
		sl.fds = fds
	}
	if n == s.n {
		return
	}
	s.log.Info("changing number of workers", "from", s.n, "to", n)
	old := s.n
	s.n = n
	s.steer()
	now := s.env.now()
	for _, sl := range s.slots[min(n, old):old] {
		delay := time.Duration(0)
		if s.m.shared == nil {
			if !s.noSteer {
				// Let the worker accept what was queued before the steering changed.
				delay = steerGrace
			} else {
				s.closeSlotSockets(sl)
			}
		}
		for _, w := range []*worker{sl.successor, sl.active} {
			if w != nil {
				s.stopAfter(w, ExitScaledDown, now.Add(delay))
			}
		}
		sl.active, sl.successor, sl.replace = nil, nil, ""
		sl.crashes, sl.respawnAt = 0, time.Time{}
	}
	s.notify.send("STATUS=" + s.statusText())
}
