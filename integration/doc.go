// Package integration holds herd's end-to-end tests: they build
// examples/hello, start it as a real master with real workers, and drive it
// over loopback. Nothing here is imported by the library.
//
// proc_test.go starts processes (startHello for bin/hello, startRaw for any
// command) and reads their logs and admin listeners. A test waits only for a
// condition, with a deadline (eventually and waitUntil in eventually_test.go),
// never for a guessed time. Every other file holds the tests of one concept:
// a fault, a feature, or a tool herd is deployed with.
//
// Light, independent tests call t.Parallel. Tests that load the machine or
// measure time run alone, and so do those that change the test process
// itself (its umask, or making it a child subreaper).
package integration
