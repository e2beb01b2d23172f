package prefork

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The contract between a master and the workers it starts.
//
// Environment: HERD_WORKER holds a JSON marker (below). Worker reads it and unsets it.
//
// Descriptors:
//
//	3  status pipe, worker -> master: lines "ready", "hb <requests> [<in-flight>]", "retire"
//	4  lifeline pipe, master -> worker: never written; end-of-file means the master is gone
//	5+ the listening sockets, in the order of Master.Addrs
//	then the crash-output pipe, worker -> master (marker's crash_fd): the worker makes it
//	   its runtime/debug.SetCrashOutput, so that what the Go runtime prints as the process
//	   dies (a panic, a fatal error, the goroutine stacks of a SIGABRT) reaches the master
//	   too. A worker whose marker has no crash_fd (an older master) does without.
//
// Heartbeats: a master that sets hb_ext in the marker reads the fields after the request
// count ("hb <requests> <in-flight>"), and ignores any it does not know, so a newer worker
// may add more. An older master, whose marker has no hb_ext, drops a heartbeat line with more
// than one field: a worker sends it "hb <requests>" alone. A worker that sends no in-flight
// count (an older one) is shown with 0 in flight. Neither change needs a new markerVersion.
const (
	markerEnv     = "HERD_WORKER"
	fdStatus      = 3
	fdLifeline    = 4
	fdFirstListen = 5
	markerVersion = 2
)

type marker struct {
	Version     int    `json:"v"`
	Slot        int    `json:"slot"`
	ID          string `json:"id"`
	Master      int    `json:"master"` // the master's pid: the worker's parent
	Listeners   int    `json:"listeners"`
	MaxRequests int    `json:"max_requests,omitempty"`
	HeartbeatNS int64  `json:"heartbeat_ns"`
	OrphanNS    int64  `json:"orphan_ns"`
	CrashFD     int    `json:"crash_fd,omitempty"`
	BeatExt     bool   `json:"hb_ext,omitempty"` // the master reads heartbeat fields after the request count
	Data        string `json:"data,omitempty"`   // Config.WorkerData
}

func (mk marker) encode() string {
	b, err := json.Marshal(mk)
	if err != nil {
		panic("prefork: encode worker marker: " + err.Error()) // plain struct: cannot happen
	}
	return string(b)
}

func decodeMarker(s string) (marker, error) {
	var mk marker
	if err := json.Unmarshal([]byte(s), &mk); err != nil {
		return mk, fmt.Errorf("bad %s: %v", markerEnv, err)
	}
	if mk.Version != markerVersion {
		return mk, fmt.Errorf("%s version %d, want %d (master and worker binaries differ?)", markerEnv, mk.Version, markerVersion)
	}
	if mk.Slot < 0 || mk.ID == "" || mk.Listeners < 0 || mk.HeartbeatNS <= 0 || mk.OrphanNS <= 0 || mk.CrashFD < 0 {
		return mk, fmt.Errorf("bad %s: %s", markerEnv, s)
	}
	return mk, nil
}

func (mk marker) heartbeat() time.Duration { return time.Duration(mk.HeartbeatNS) }
func (mk marker) orphan() time.Duration    { return time.Duration(mk.OrphanNS) }

// Status messages.
const (
	msgReady  = "ready"
	msgBeat   = "hb"
	msgRetire = "retire"
)

type statusMsg struct {
	kind     string
	requests uint64
	inFlight int // requests being handled; 0 when the worker does not say
}

func parseStatus(line string) (statusMsg, bool) {
	kind, arg, _ := strings.Cut(line, " ")
	switch kind {
	case msgReady, msgRetire:
		return statusMsg{kind: kind}, true
	case msgBeat:
		return parseBeat(arg)
	}
	return statusMsg{}, false
}

// workerID returns the id of a worker in slot's lane ('a' or 'b').
func workerID(slot int, lane byte) string {
	return strconv.Itoa(slot) + string(lane)
}
