package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/server"
)

// quiet is a configuration for the examples: one process on ports the
// kernel picks, without the server's own log lines.
func quiet() server.Config {
	return server.Config{
		Bind:        []string{"127.0.0.1:0"},
		MetricsBind: "127.0.0.1:0",
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func fetch(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A test starts the whole server in its own process, the httptest way: on
// 127.0.0.1:0, with its admin listener and run directory, and asks the
// Server where they are.
func ExampleStart() {
	srv, err := server.Start(context.Background(), quiet(), newApp)
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())

	fmt.Print(fetch(srv.URL() + "/hello"))
	metrics := fetch("http://" + srv.AdminAddr().String() + "/metrics")
	fmt.Println(strings.Contains(metrics, `http_requests_total{code="200",method="GET",route="/hello"} 1`))
	_, err = os.Stat(srv.RunDir())
	fmt.Println(err == nil)
	// Output:
	// hello
	// true
	// true
}

// Clean-up that must wait for the requests in flight: it runs once the
// worker has answered its last request, the last registered first.
func ExampleWorker_OnShutdown() {
	app := func(w *server.Worker) (http.Handler, error) {
		w.OnShutdown(func(ctx context.Context) error {
			fmt.Println("closing the database pool")
			return nil
		})
		w.OnShutdown(func(ctx context.Context) error {
			fmt.Println("flushing the buffered events")
			return nil
		})
		return http.NotFoundHandler(), nil
	}
	srv, err := server.Start(context.Background(), quiet(), app)
	if err != nil {
		panic(err)
	}
	srv.Shutdown(context.Background())
	// Output:
	// flushing the buffered events
	// closing the database pool
}

// Background work of the App ends when its worker begins to drain.
func ExampleWorker_Context() {
	stopped := make(chan struct{})
	app := func(w *server.Worker) (http.Handler, error) {
		go func() {
			defer close(stopped)
			<-w.Context().Done() // a ticker's loop would select on it
			fmt.Println("cache refresher stopped:", w.Context().Err())
		}()
		return http.NotFoundHandler(), nil
	}
	srv, err := server.Start(context.Background(), quiet(), app)
	if err != nil {
		panic(err)
	}
	srv.Shutdown(context.Background())
	<-stopped
	// Output:
	// cache refresher stopped: context canceled
}

// The App's own metrics go to its worker's registry; the admin listener
// serves every worker's merged.
func ExampleWorker_Registry() {
	app := func(w *server.Worker) (http.Handler, error) {
		jobs, err := w.Registry().NewCounter(metrics.CounterOpts{Name: "jobs_total", Help: "Jobs done."})
		if err != nil {
			return nil, err
		}
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { jobs.Inc() }), nil
	}
	srv, err := server.Start(context.Background(), quiet(), app)
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	fetch(srv.URL() + "/job")
	fetch(srv.URL() + "/job")
	sc := bufio.NewScanner(strings.NewReader(fetch("http://" + srv.AdminAddr().String() + "/metrics")))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "jobs_total ") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// jobs_total 2
}

// Which process the App runs in: slot 0, id "0a" in a single process; in
// worker processes, each worker's own.
func ExampleWorker_ID() {
	app := func(w *server.Worker) (http.Handler, error) {
		fmt.Println("slot", w.Slot(), "id", w.ID())
		return http.NotFoundHandler(), nil
	}
	srv, err := server.Start(context.Background(), quiet(), app)
	if err != nil {
		panic(err)
	}
	srv.Shutdown(context.Background())
	// Output:
	// slot 0 id 0a
}

// The App's log lines carry its worker's slot and id.
func ExampleWorker_Logger() {
	cfg := quiet()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelWarn, // the server's own lines are Info
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	app := func(w *server.Worker) (http.Handler, error) {
		w.Logger().Warn("cache is cold", "entries", 0)
		return http.NotFoundHandler(), nil
	}
	srv, err := server.Start(context.Background(), cfg, app)
	if err != nil {
		panic(err)
	}
	srv.Shutdown(context.Background())
	// Output:
	// level=WARN msg="cache is cold" worker=0 id=0a entries=0
}

// An App of herd's first form, which takes only the registry, adapted.
func ExampleRegistryApp() {
	oldApp := func(reg *metrics.Registry) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "still served\n") }), nil
	}
	srv, err := server.Start(context.Background(), quiet(), server.RegistryApp(oldApp))
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	fmt.Print(fetch(srv.URL() + "/"))
	// Output:
	// still served
}

// An App that cannot build stops the program before it serves: Main exits
// with status 3 and this message.
func ExampleErrApp() {
	app := func(w *server.Worker) (http.Handler, error) {
		return nil, fmt.Errorf("connecting to the database: connection refused")
	}
	_, err := server.Start(context.Background(), quiet(), app)
	fmt.Println(err)
	// Output:
	// building the app: connecting to the database: connection refused
}
