package prefork_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/herdhttp/herd/prefork"
)

// The test binary plays three roles. Started by a master (HERD_WORKER set), it is a worker:
// a tiny HTTP server whose behaviour PREFORK_TEST_WORKER chooses. With PREFORK_TEST_MASTER
// set, it is a master run as a subprocess (for the signal and kill -9 tests). Otherwise it
// runs the tests.
func TestMain(m *testing.M) {
	if w, ok := prefork.Worker(); ok {
		os.Exit(runTestWorker(w))
	}
	if cfg := os.Getenv("PREFORK_TEST_MASTER"); cfg != "" {
		os.Exit(runTestMaster(cfg))
	}
	os.Exit(m.Run())
}

const behaviorEnv = "PREFORK_TEST_WORKER"

// workerInfo is what a test worker answers on /info.
type workerInfo struct {
	PID         int               `json:"pid"`
	PPID        int               `json:"ppid"`
	Slot        int               `json:"slot"`
	ID          string            `json:"id"`
	GOMAXPROCS  int               `json:"gomaxprocs"`
	GOMEMLIMIT  string            `json:"gomemlimit"`
	Marker      string            `json:"marker"` // HERD_WORKER as the worker's app sees it: always ""
	MaxRequests int               `json:"max_requests"`
	Extra       string            `json:"extra"`
	Data        string            `json:"data"` // WorkerProcess.Data
	USR1        int32             `json:"usr1"` // SIGUSR1 signals received
	Env         map[string]string `json:"env"`
}

func runTestWorker(w *prefork.WorkerProcess) int {
	if f := os.Getenv("PREFORK_TEST_FAILFILE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			fmt.Fprintln(os.Stderr, "test worker: fail file exists")
			return 1
		}
	}
	behavior := os.Getenv(behaviorEnv)
	if b := testBuild(); b != "" { // a "build" of the test binary (canary_test.go)
		behavior = b
	}
	switch behavior {
	case "exit-before-ready":
		fmt.Fprintln(os.Stderr, "test worker: failing on purpose")
		return 1
	case "hang-before-ready":
		<-w.Stop()
		return 0
	case "crash-after-ready":
		w.Ready()
		time.Sleep(50 * time.Millisecond) // runs in the child: not test synchronisation
		return 2
	case "panic-after-ready":
		w.Ready()
		panic("test worker: panicking on purpose")
	case "hang-ignore-abort":
		// As hang-after-ready, and SIGABRT does nothing.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGABRT)
	}
	var served atomic.Uint64
	w.SetRequestCounter(served.Load)
	var usr1s atomic.Int32
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			usr1s.Add(1)
		}
	}()
	if behavior == "hang-after-ready" || behavior == "hang-ignore-abort" {
		// No heartbeat after Ready: the counter blocks.
		w.SetRequestCounter(func() uint64 { select {} })
	}
	var inFlight atomic.Int64 // requests in /hold
	w.SetInFlightCounter(func() int { return int(inFlight.Load()) })
	mux := http.NewServeMux()
	mux.HandleFunc("/hold", func(rw http.ResponseWriter, r *http.Request) {
		// In flight until the client goes away or the worker is told to stop; the status
		// line is sent first, so the client knows the request is being handled.
		inFlight.Add(1)
		defer inFlight.Add(-1)
		rw.WriteHeader(http.StatusOK)
		rw.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-w.Stop():
		}
	})
	mux.HandleFunc("/spin", func(rw http.ResponseWriter, r *http.Request) {
		// Busy until this process has used ms more milliseconds of CPU time.
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		end := processCPU() + time.Duration(ms)*time.Millisecond
		for x := 0; processCPU() < end; {
			for i := 0; i < 1e6; i++ {
				x += i
			}
			_ = x
		}
	})
	var ballastMu sync.Mutex
	var ballast [][]byte // memory taken by /grow, kept
	mux.HandleFunc("/grow", func(rw http.ResponseWriter, r *http.Request) {
		mib, _ := strconv.Atoi(r.URL.Query().Get("mib"))
		go func() { // answered at once: the drain must not wait for this
			b := make([]byte, mib<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1 // resident, not just reserved
			}
			ballastMu.Lock()
			ballast = append(ballast, b)
			ballastMu.Unlock()
		}()
	})
	mux.HandleFunc("/info", func(rw http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if behavior == "fail-requests" {
			http.Error(rw, "a bad build", http.StatusInternalServerError)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(workerInfo{
			PID: os.Getpid(), PPID: os.Getppid(), Slot: w.Slot, ID: w.ID,
			GOMAXPROCS: runtime.GOMAXPROCS(0), GOMEMLIMIT: os.Getenv("GOMEMLIMIT"),
			Marker: os.Getenv("HERD_WORKER"), MaxRequests: w.MaxRequests(),
			Extra: os.Getenv("PREFORK_TEST_EXTRA"), Data: w.Data, USR1: usr1s.Load(),
			Env: map[string]string{
				"GOMAXPROCS": os.Getenv("GOMAXPROCS"), "LISTEN_FDS": os.Getenv("LISTEN_FDS"),
				"LISTEN_PID": os.Getenv("LISTEN_PID"), "NOTIFY_SOCKET": os.Getenv("NOTIFY_SOCKET"),
			},
		})
		if max := w.MaxRequests(); max > 0 && n >= uint64(max) {
			w.Retire()
		}
	})
	// A drain that loses nothing (net/http's Shutdown drops a request it reads after it
	// began): stop accepting, then wait for the accepted connections to finish. Test
	// clients send one request per connection ("Connection: close").
	var open atomic.Int64
	srv := &http.Server{Handler: mux, ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	var wg sync.WaitGroup
	for _, l := range w.Listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Serve(l)
		}()
	}
	stopped := false
	if gate := os.Getenv("PREFORK_TEST_GATE"); gate != "" {
		// A slow boot: ready only once the test creates the gate file. It serves meanwhile,
		// so a stop drains it like a ready worker.
		for !stopped {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			select {
			case <-w.Stop():
				stopped = true
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if !stopped {
		if err := w.Ready(); err != nil {
			fmt.Fprintln(os.Stderr, "test worker:", err)
			return 1
		}
	}
	<-w.Stop()
	for _, l := range w.Listeners {
		l.Close()
	}
	wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	srv.Close()
	return 0
}

// masterSpec configures a subprocess master.
type masterSpec struct {
	Workers    int
	Mode       string
	Timeout    time.Duration
	Behavior   string
	Activation bool // fd 3 is a listening socket: pretend systemd passed it
	CrashLimit int
	NoFile     uint64 // > 0: the master's RLIMIT_NOFILE (soft limit)
	Unix       string // a unix socket path the master serves too

	// Binary upgrades (upgrade_test.go).
	PIDFile         string
	GracefulTimeout time.Duration
	UpgradeFailFile string // a new master exits 2 at once while this file exists
	UpgradeGate     string // a new master's workers are ready only once this file exists
	// The old master's upgrade timeout fires as the new master reports ready
	// (prefork.SetUpgradeTimeoutAtReadyForTest).
	UpgradeTimeoutAtReady bool
	UpgradeSocketMode     uint32 // > 0: a new master's Config.SocketMode
	TakeOverGate          string // a new master takes over only once this file exists
}

// runTestMaster runs a master configured by spec (JSON). It prints "admin ADDR" and
// "addr ADDR" on stdout when listening; the admin server answers /workers.
func runTestMaster(spec string) int {
	var sp masterSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "test master:", err)
		return 2
	}
	var environ []string
	if sp.Activation {
		environ = append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid()), "LISTEN_FDS=1")
	}
	if sp.NoFile > 0 {
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
		lim.Cur = sp.NoFile
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "test master: setrlimit:", err)
			return 2
		}
	}
	// A new master started by a binary upgrade continues from the old one's generation and
	// serves the admin listener it inherited.
	inh, upgraded, err := prefork.Inherited()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test master:", err)
		return 2
	}
	gen, admin := 1, inh.Listeners["admin"]
	env := []string{behaviorEnv + "=" + sp.Behavior}
	var socketMode fs.FileMode
	if upgraded {
		if _, err := os.Stat(sp.UpgradeFailFile); sp.UpgradeFailFile != "" && err == nil {
			fmt.Fprintln(os.Stderr, "test master: failing as a new master on purpose")
			return 2
		}
		socketMode = fs.FileMode(sp.UpgradeSocketMode)
		gen, _ = strconv.Atoi(inh.Values["generation"])
		gen++
		if sp.UpgradeGate != "" {
			env = append(env, "PREFORK_TEST_GATE="+sp.UpgradeGate)
		}
	}
	if admin == nil {
		if admin, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	addrs := []string{"127.0.0.1:0"}
	if sp.Unix != "" {
		addrs = append(addrs, prefork.UnixPrefix+sp.Unix)
	}
	m, err := prefork.NewMaster(prefork.Config{
		Environ:    environ,
		Workers:    sp.Workers,
		Addrs:      addrs,
		Mode:       prefork.ListenerMode(sp.Mode),
		Timeout:    sp.Timeout,
		CrashLimit: sp.CrashLimit,
		// Generous: the race-instrumented test binary can take long to start under load.
		BootTimeout:     20 * time.Second,
		GracefulTimeout: sp.GracefulTimeout,
		PIDFile:         sp.PIDFile,
		SocketMode:      socketMode,
		Env:             env,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Handover: func() (prefork.Handover, error) {
			return prefork.Handover{
				Listeners: map[string]net.Listener{"admin": admin},
				Values:    map[string]string{"generation": strconv.Itoa(gen)},
			}, nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if sp.UpgradeTimeoutAtReady && !upgraded {
		prefork.SetUpgradeTimeoutAtReadyForTest(m)
	}
	if sp.TakeOverGate != "" && upgraded {
		prefork.SetTakeOverGateForTest(m, sp.TakeOverGate)
	}
	var held []int // descriptors taken by /fill, kept for the whole run
	var heldMu sync.Mutex
	go http.Serve(admin, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fill" {
			// A neighbour in the master's process: take every free descriptor.
			heldMu.Lock()
			defer heldMu.Unlock()
			n := 0
			for {
				fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					fmt.Fprintf(rw, "%d %v\n", n, err)
					return
				}
				held = append(held, fd)
				n++
			}
		}
		json.NewEncoder(rw).Encode(m.Workers())
	}))
	fmt.Printf("admin %s\naddr %s\ngeneration %d pid %d\n", admin.Addr(), m.Addrs()[0], gen, os.Getpid())
	err = m.Run(context.Background())
	fmt.Printf("exit pid %d handed-over %v took-over %v\n", os.Getpid(), m.HandedOver(), m.TookOver())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
