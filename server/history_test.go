package server

import (
	"reflect"
	"testing"
	"time"

	"github.com/herdhttp/herd/prefork"
)

func TestRingKeepsTheLastValuesOldestFirst(t *testing.T) {
	t.Parallel()
	r := newRing[int](4)
	if got := r.items(); len(got) != 0 {
		t.Errorf("empty ring: %v", got)
	}
	for i := range 3 {
		r.push(i)
	}
	if got := r.items(); !reflect.DeepEqual(got, []int{0, 1, 2}) {
		t.Errorf("3 pushed into 4: %v", got)
	}
	for i := 3; i < 11; i++ {
		r.push(i)
	}
	if got := r.items(); !reflect.DeepEqual(got, []int{7, 8, 9, 10}) {
		t.Errorf("11 pushed into 4: %v, want the last 4", got)
	}
	got := r.items()
	got[0] = 99
	if r.items()[0] != 7 {
		t.Error("items shares the ring's memory")
	}
}

func readyInfo(slot, pid int, started time.Time, requests uint64) prefork.WorkerInfo {
	return prefork.WorkerInfo{Slot: slot, PID: pid, State: prefork.StateReady, Started: started, Requests: requests}
}

// A slot's rate counts the growth of each of its workers, and the whole
// count of a worker that started since the previous sample, so that a
// replacement neither drops the rate to zero nor counts anything twice.
func TestRatesPerSlotAcrossAReplacement(t *testing.T) {
	t.Parallel()
	h := newHistory()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h.record(at(0), []prefork.WorkerInfo{readyInfo(0, 10, t0, 100), readyInfo(1, 11, t0, 0)})
	h.record(at(2), []prefork.WorkerInfo{readyInfo(0, 10, t0, 300), readyInfo(1, 11, t0, 50)})
	old := readyInfo(0, 10, t0, 350)
	old.State = prefork.StateStopping
	h.record(at(4), []prefork.WorkerInfo{old, readyInfo(0, 12, at(3), 20), readyInfo(1, 11, t0, 50)})
	h.record(at(6), []prefork.WorkerInfo{readyInfo(0, 12, at(3), 120)}) // slot 1 gone (scaled down)

	want := map[int][]ratePoint{
		0: {{at(2), 100}, {at(4), 35}, {at(6), 50}},
		1: {{at(2), 25}, {at(4), 0}},
	}
	if got := h.rates(); !reflect.DeepEqual(got, want) {
		t.Errorf("rates:\n got  %v\n want %v", got, want)
	}
	total := totalRate(h.rates())
	if want := []ratePoint{{at(2), 125}, {at(4), 35}, {at(6), 50}}; !reflect.DeepEqual(total, want) {
		t.Errorf("total: %v, want %v", total, want)
	}
}

// However long the run, the history holds sampleKeep samples and exitKeep
// exits.
func TestHistoryIsBounded(t *testing.T) {
	t.Parallel()
	h := newHistory()
	t0 := time.Now()
	ws := []prefork.WorkerInfo{readyInfo(0, 10, t0, 0), readyInfo(1, 11, t0, 0)}
	for i := range 10 * sampleKeep {
		ws[0].Requests += 2
		h.record(t0.Add(time.Duration(i)*sampleEvery), ws)
	}
	for i := range 10 * exitKeep {
		h.exited(t0.Add(time.Duration(i)*time.Second), prefork.WorkerExit{Slot: 0, PID: 1000 + i, Reason: prefork.ExitCrashed})
	}
	h.mu.Lock()
	samples, exits := len(h.samples.items()), len(h.exits.items())
	h.mu.Unlock()
	if samples != sampleKeep || exits != exitKeep {
		t.Errorf("kept %d samples and %d exits, want %d and %d", samples, exits, sampleKeep, exitKeep)
	}
	if r := h.rates()[0]; len(r) != sampleKeep-1 || r[0].perSec != 1 {
		t.Errorf("slot 0: %d rates (want %d), first %v (want 1/s)", len(r), sampleKeep-1, r[0])
	}
	es := h.recentExits()
	if es[0].PID != 1000+10*exitKeep-1 || es[len(es)-1].PID != 1000+9*exitKeep {
		t.Errorf("exits from pid %d to %d, want the most recent first", es[0].PID, es[len(es)-1].PID)
	}
}

func TestReloadOutcome(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h := newHistory()
	if r := h.lastReload(); !r.Started.IsZero() {
		t.Fatalf("no reload yet: %+v", r)
	}

	// A rolling restart is over once every worker started after it began
	// and is ready.
	h.reloadStarted(at(10))
	h.record(at(11), []prefork.WorkerInfo{readyInfo(0, 20, at(0), 5), readyInfo(1, 21, at(0), 5)})
	starting := readyInfo(0, 22, at(11), 0)
	starting.State = prefork.StateStarting
	h.record(at(12), []prefork.WorkerInfo{readyInfo(0, 20, at(0), 5), starting, readyInfo(1, 21, at(0), 5)})
	if r := h.lastReload(); !r.Ended.IsZero() {
		t.Fatalf("old workers still serve: %+v, want in progress", r)
	}
	h.record(at(14), []prefork.WorkerInfo{readyInfo(0, 22, at(11), 0), readyInfo(1, 23, at(13), 0)})
	if r := h.lastReload(); r.Result != "ok" || !r.Ended.Equal(at(14)) || !r.Started.Equal(at(10)) {
		t.Errorf("every worker replaced: %+v, want ok at %v", r, at(14))
	}

	// A new worker that fails to boot ends it: prefork abandons it. An
	// old worker's failure does not.
	h.reloadStarted(at(20))
	h.exited(at(21), prefork.WorkerExit{Slot: 1, PID: 23, Reason: prefork.ExitBootFailed, Started: at(13)})
	if r := h.lastReload(); !r.Ended.IsZero() {
		t.Errorf("an old worker's exit ended the reload: %+v", r)
	}
	h.exited(at(22), prefork.WorkerExit{Slot: 0, PID: 30, Reason: prefork.ExitBootFailed, Started: at(21)})
	if r := h.lastReload(); r.Result != "failed" || !r.Ended.Equal(at(22)) || r.Detail == "" {
		t.Errorf("a new worker failed to boot: %+v, want failed at %v", r, at(22))
	}

	// A strategy that knows better says so, and nothing overrides it.
	h.reloadStarted(at(30))
	h.reloadEnded(at(40), "rolled_back", "canary 5xx ratio 0.5 > 0.01")
	h.record(at(42), []prefork.WorkerInfo{readyInfo(0, 40, at(31), 0)})
	if r := h.lastReload(); r.Result != "rolled_back" || !r.Ended.Equal(at(40)) || !r.Started.Equal(at(30)) {
		t.Errorf("rolled back: %+v", r)
	}
	h.reloadEnded(at(50), "ok", "")
	if r := h.lastReload(); r.Result != "ok" || !r.Started.Equal(at(50)) {
		t.Errorf("an outcome without a reload in progress: %+v, want one that started and ended at %v", r, at(50))
	}
}
