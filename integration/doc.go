// Package integration holds herd's end-to-end tests: they build
// examples/hello, start it as a real master with real workers, and drive it
// over loopback. Nothing here is imported by the library.
package integration
