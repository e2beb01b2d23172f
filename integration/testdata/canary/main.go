// Command canary is a herd application for the canary reload tests: examples/hello's
// GET /hello, whose status is set when it is built, so that one source gives a good build
// and a bad one:
//
//	go build -ldflags "-X main.helloStatus=500" ./integration/testdata/canary
package main

import (
	"flag"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/herdhttp/herd/middleware"
	"github.com/herdhttp/herd/server"
)

// helloStatus is the status GET /hello answers; set with -ldflags "-X main.helloStatus=N".
var helloStatus = "200"

func main() {
	status, err := strconv.Atoi(helloStatus)
	if err != nil || status < 100 || status > 599 {
		os.Stderr.WriteString("canary: bad helloStatus " + strconv.Quote(helloStatus) + "\n")
		os.Exit(2)
	}
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("canary", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	os.Exit(server.Main(&cfg, fs, os.Args[1:], func(wk *server.Worker) (http.Handler, error) {
		r := chi.NewRouter()
		r.Use(middleware.Instrument(wk.Registry()))
		r.Get("/hello", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"msg":"hello"}`+"\n")
		})
		return r, nil
	}))
}
