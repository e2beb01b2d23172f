package prefork_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/herdhttp/herd/prefork"
)

// A master whose own admin listener survives binary upgrades (SIGUSR2): the new master gets
// it back from Inherited, with the values the old one handed over. (Compile-only: it forks.)
func ExampleInherited() {
	if w, ok := prefork.Worker(); ok {
		serveWorker(w)
		return
	}
	inherited, upgraded, err := prefork.Inherited()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2) // the old master keeps serving
	}
	admin := inherited.Listeners["admin"]
	if !upgraded {
		if admin, err = net.Listen("tcp", "127.0.0.1:9090"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println("upgrades so far:", inherited.Values["upgrades"])
	m, err := prefork.NewMaster(prefork.Config{
		Workers: 4,
		Addrs:   []string{"127.0.0.1:8080"},
		Handover: func() (prefork.Handover, error) {
			return prefork.Handover{
				Listeners: map[string]net.Listener{"admin": admin},
				Values:    map[string]string{"upgrades": "1"},
			}, nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go http.Serve(admin, http.NotFoundHandler())
	if err := m.Run(context.Background()); err != nil {
		os.Exit(1)
	}
	if m.HandedOver() {
		// The new master serves now: leave what it took over (a run directory) in place.
		return
	}
}

// Upgrade does what SIGUSR2 does: the binary at the master's path becomes the new master.
// (Compile-only: it forks.)
func ExampleMaster_Upgrade() {
	m, err := prefork.NewMaster(prefork.Config{Workers: 2, Addrs: []string{"127.0.0.1:8080"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		// ... a new binary was installed at the same path:
		m.Upgrade()
	}()
	m.Run(context.Background()) // returns nil once the new master serves
	fmt.Println("handed over:", m.HandedOver())
}

func serveWorker(w *prefork.WorkerProcess) {
	srv := &http.Server{Handler: http.NotFoundHandler()}
	for _, l := range w.Listeners {
		go srv.Serve(l)
	}
	w.Ready()
	<-w.Stop()
	srv.Shutdown(context.Background())
}
