package prefork_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

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
