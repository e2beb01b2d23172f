// Command fiber is herd-bench's Fiber peer: the GET /hello of
// examples/hello as a github.com/gofiber/fiber/v2 app with Prefork on,
// the Express-style framework (on fasthttp) a Go user would pick instead of
// herd. Fiber's router, no metrics.
//
//	fiber -bind 127.0.0.1:8084 -workers 2
//
// The master starts -workers children (Fiber's prefork starts one per
// GOMAXPROCS of the master; each child runs with GOMAXPROCS 1 and its own
// SO_REUSEPORT socket). GET /healthz answers the child's pid, so herd-bench
// can wait until every child serves. The children exit when the master
// dies (SIGTERM ends the master).
//
// This program is its own Go module: herd does not depend on Fiber.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

const helloBody = `{"msg":"hello"}` + "\n"

func main() {
	fs := flag.NewFlagSet("fiber", flag.ContinueOnError)
	bind := fs.String("bind", "127.0.0.1:8084", "listen address")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "child processes")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *workers < 1 {
		fmt.Fprintln(os.Stderr, "fiber: -workers must be at least 1")
		os.Exit(2)
	}
	if !fiber.IsChild() {
		// The prefork master starts one child per GOMAXPROCS.
		runtime.GOMAXPROCS(*workers)
	}
	app := fiber.New(fiber.Config{Prefork: true, DisableStartupMessage: true})
	pid := strconv.Itoa(os.Getpid()) + "\n"
	app.Get("/hello", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(helloBody)
	})
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.SendString(pid)
	})
	if err := app.Listen(*bind); err != nil {
		fmt.Fprintln(os.Stderr, "fiber:", err)
		os.Exit(1)
	}
}
