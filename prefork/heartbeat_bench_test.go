package prefork

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHeartbeatPublish is the master's work for one heartbeat apart
// from reading /proc: recording it, then publishing the worker table that
// Master.Workers returns (the supervisor publishes after every event).
func BenchmarkHeartbeatPublish(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			s := &supervisor{m: &Master{}}
			start := time.Now()
			for i := range n {
				w := &worker{slot: &slot{index: i}, id: strconv.Itoa(1000 + i), pid: 10 + i, state: StateReady,
					started: start, readyAt: start, lastBeat: start}
				s.workers = append(s.workers, w)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				w := s.workers[i%n]
				w.lastBeat, w.requests = start.Add(time.Duration(i)), uint64(i)
				s.publish()
			}
		})
	}
}
