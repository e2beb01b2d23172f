package server_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/server"
)

func newApp(w *server.Worker) (http.Handler, error) {
	reg := w.Registry()
	r := chi.NewRouter()
	r.Use(middleware.Instrument(reg))
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	return r, nil
}

// A program's main function: the same binary is the master and, started
// again by the master, every worker. Flags not given on the command line
// are read from HERD_<FLAG> variables.
func Example() {
	cfg := server.DefaultConfig() // one worker per CPU
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	os.Exit(server.Main(&cfg, fs, os.Args[1:], newApp))
}

// Run without Main: a program that builds its Config itself, here one
// process without workers, stopped by SIGTERM or Ctrl-C.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := server.Run(ctx, server.Config{Bind: []string{"127.0.0.1:8080"}, Workers: 0}, newApp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Every error of the configuration is one line that names the flag.
func ExampleConfig_Validate() {
	for _, cfg := range []server.Config{
		{Workers: -1},
		{Workers: 2, MaxRequestsJitter: 10},
		{Workers: 2, ListenerMode: "fork"},
		{Workers: 2, GracefulTimeout: server.Off},
	} {
		fmt.Println(cfg.Validate())
	}
	// Output:
	// -workers: must be 0 or more, got -1
	// -max-requests-jitter: max requests jitter needs max requests
	// -listener-mode: unknown listener mode "fork" (want "reuseport" or "shared")
	// -graceful-timeout: cannot be off; give a duration such as 30s
}

// The flags write into the Config; "off" turns a timeout off.
func ExampleConfig_RegisterFlags() {
	var cfg server.Config
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.Parse([]string{"-workers", "4", "-read-timeout", "off"})
	fmt.Println(cfg.Workers, cfg.ReadTimeout == server.Off, cfg.IdleTimeout)
	_, usage := flag.UnquoteUsage(fs.Lookup("metrics-dir"))
	fmt.Println(usage)
	// Output:
	// 4 true 2m0s
	// directory for this run's private metric files (default /dev/shm or $TMPDIR) [$HERD_METRICS_DIR]
}

// A line for -admin-basic-auth-file.
func ExampleHashPassword() {
	h, err := server.HashPassword("s3cret")
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(h, "$pbkdf2-sha256$"))
	// Output: true
}
