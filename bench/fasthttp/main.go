// Command fasthttp is herd-bench's fasthttp peer: the GET /hello of
// examples/hello served by github.com/valyala/fasthttp with its prefork
// package, the pre-fork server a Go user would pick instead of herd when
// speed matters more than net/http compatibility. No router and no
// metrics, as most fasthttp benchmarks are run.
//
//	fasthttp -bind 127.0.0.1:8083 -workers 2
//
// The master starts -workers children (fasthttp's prefork starts one per
// GOMAXPROCS of the master; each child runs with GOMAXPROCS 1), which
// accept on one listening socket inherited from the master (the prefork
// package's default; SO_REUSEPORT with -reuseport). GET /healthz answers
// the child's pid, so herd-bench can wait until every child serves. The
// children exit when the master dies (SIGTERM ends the master).
//
// This program is its own Go module: herd does not depend on fasthttp.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/prefork"
)

const helloBody = `{"msg":"hello"}` + "\n"

func main() {
	fs := flag.NewFlagSet("fasthttp", flag.ContinueOnError)
	bind := fs.String("bind", "127.0.0.1:8083", "listen address")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "child processes")
	reuse := fs.Bool("reuseport", false, "one SO_REUSEPORT socket per child instead of one shared socket")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *workers < 1 {
		fmt.Fprintln(os.Stderr, "fasthttp: -workers must be at least 1")
		os.Exit(2)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/hello":
				if !ctx.IsGet() {
					ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
					return
				}
				ctx.SetContentType("application/json")
				ctx.WriteString(helloBody)
			case "/healthz":
				ctx.Write(pid)
			default:
				ctx.Error("404 page not found", fasthttp.StatusNotFound)
			}
		},
		// The same headers as net/http's response: Date, Content-Type,
		// Content-Length, no Server.
		NoDefaultServerHeader: true,
	}
	if !prefork.IsChild() {
		// The prefork master starts one child per GOMAXPROCS.
		runtime.GOMAXPROCS(*workers)
	}
	p := prefork.New(srv)
	p.Reuseport = *reuse
	p.OnMasterDeath = func() { os.Exit(0) }
	if err := p.ListenAndServe(*bind); err != nil {
		fmt.Fprintln(os.Stderr, "fasthttp:", err)
		os.Exit(1)
	}
}
