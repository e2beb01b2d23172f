package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

func TestThrottlePassesAMessageOnceEveryInterval(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := &throttle{Handler: slog.NewTextHandler(&buf, nil), every: time.Minute, now: func() time.Time { return now },
		state: &throttleState{last: map[string]time.Time{}}}
	log := slog.New(h).With("worker", 1) // derived loggers share what passed
	for _, step := range []struct {
		after time.Duration
		msg   string
	}{
		{0, "metrics: series dropped"},                     // passes
		{time.Second, "metrics: series dropped"},           // dropped
		{time.Second, "another message"},                   // passes: its own count
		{30 * time.Second, "metrics: series dropped"},      // dropped
		{29 * time.Second, "metrics: series dropped"},      // passes: a minute after the first
		{59 * time.Second, "metrics: series dropped"},      // dropped
		{time.Second + time.Nanosecond, "another message"}, // passes
	} {
		now = now.Add(step.after)
		log.Error(step.msg)
	}
	if n := strings.Count(buf.String(), "series dropped"); n != 2 {
		t.Errorf("\"series dropped\" logged %d times, want 2:\n%s", n, buf.String())
	}
	if n := strings.Count(buf.String(), "another message"); n != 2 {
		t.Errorf("\"another message\" logged %d times, want 2:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "worker=1") {
		t.Errorf("attributes lost:\n%s", buf.String())
	}
}

func TestThrottleIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	var buf testutil.SyncBuffer
	log := throttled(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				log.Error("metrics: series dropped")
			}
		})
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "series dropped"); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
}
