package prefork_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// A complete prefork program: the same binary is the master and, re-executed, each worker.
// (Compile-only: it forks.)
func Example() {
	if w, ok := prefork.Worker(); ok {
		srv := &http.Server{Handler: http.NotFoundHandler()}
		for _, l := range w.Listeners {
			go srv.Serve(l)
		}
		w.Ready()
		<-w.Stop()
		srv.Shutdown(context.Background()) // see the server package for a drain that loses nothing
		return
	}
	m, err := prefork.NewMaster(prefork.Config{Workers: 4, Addrs: []string{"127.0.0.1:8080"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Run handles SIGTERM, SIGINT, SIGHUP... itself and returns when the master stopped.
	if err := m.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// A worker reports the requests it has served and those it is handling with each heartbeat;
// Master.Workers shows them. Both counters are read by the heartbeat goroutine: atomics.
// (Compile-only: it forks.)
func ExampleWorkerProcess_SetInFlightCounter() {
	w, ok := prefork.Worker()
	if !ok {
		return
	}
	var served, inFlight atomic.Int64
	w.SetRequestCounter(func() uint64 { return uint64(served.Load()) })
	w.SetInFlightCounter(func() int { return int(inFlight.Load()) })
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		served.Add(1)
		inFlight.Add(1)
		defer inFlight.Add(-1)
		fmt.Fprintln(rw, "hello")
	})}
	for _, l := range w.Listeners {
		go srv.Serve(l)
	}
	w.Ready()
	<-w.Stop()
	srv.Shutdown(context.Background())
}

// Workers are replaced before they grow too big or too old, draining like max-requests.
// (Compile-only: it forks.)
func ExampleConfig_recycling() {
	m, err := prefork.NewMaster(prefork.Config{
		Workers:            4,
		Addrs:              []string{"127.0.0.1:8080"},
		MaxWorkerRSS:       512 << 20,        // bytes resident
		MaxWorkerAge:       6 * time.Hour,    // since the worker started
		MaxWorkerAgeJitter: 30 * time.Minute, // so that they do not all go at once
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	m.Run(context.Background())
}

// Counters are the totals a server exports as metrics, beside Workers.
func ExampleMaster_Counters() {
	m, err := prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{"127.0.0.1:0"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	c := m.Counters()
	fmt.Println("worker starts that found no file descriptor:", c.FDExhausted)
	// Output: worker starts that found no file descriptor: 0
}
