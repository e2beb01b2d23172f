package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// metricsLogEvery is how often a serving process logs the same message of
// its metrics registry at most. On a full filesystem every request that
// needs a new series fails the same way; the failures are counted
// (herd_metrics_write_errors_total), and the log says so once a minute.
const metricsLogEvery = time.Minute

// throttle is a slog.Handler that passes a record on only if no record with
// the same message passed within every; the others are dropped. Handlers
// derived with WithAttrs and WithGroup share the memory of what passed.
type throttle struct {
	slog.Handler
	every time.Duration
	now   func() time.Time
	state *throttleState
}

type throttleState struct {
	mu   sync.Mutex
	last map[string]time.Time // message -> when it last passed
}

// throttled returns log with records of one message limited to one every
// every.
func throttled(log *slog.Logger, every time.Duration) *slog.Logger {
	return slog.New(&throttle{Handler: log.Handler(), every: every, now: time.Now,
		state: &throttleState{last: map[string]time.Time{}}})
}

func (t *throttle) Handle(ctx context.Context, r slog.Record) error {
	now := t.now()
	t.state.mu.Lock()
	last, seen := t.state.last[r.Message]
	pass := !seen || now.Sub(last) >= t.every
	if pass {
		t.state.last[r.Message] = now
	}
	t.state.mu.Unlock()
	if !pass {
		return nil
	}
	return t.Handler.Handle(ctx, r)
}

func (t *throttle) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *t
	c.Handler = t.Handler.WithAttrs(attrs)
	return &c
}

func (t *throttle) WithGroup(name string) slog.Handler {
	c := *t
	c.Handler = t.Handler.WithGroup(name)
	return &c
}
