package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// The sixteen combinations of optional interfaces a wrapped ResponseWriter
// can have: rw<F><H><R><P>, where F is http.Flusher (with FlushError, for
// http.ResponseController), H http.Hijacker, R io.ReaderFrom and P
// http.Pusher. Each is a struct holding only a pointer, so it is stored in an
// interface without an allocation. (httpsnoop's approach, spelled out here
// so that the package needs no dependency.)

// writer returns w as the combination type with exactly the optional
// interfaces of the writer it wraps.
func (w *responseWriter) writer() http.ResponseWriter {
	switch w.caps {
	case hasFlusher:
		return rwF{w}
	case hasHijacker:
		return rwH{w}
	case hasFlusher | hasHijacker:
		return rwFH{w}
	case hasReaderFrom:
		return rwR{w}
	case hasFlusher | hasReaderFrom:
		return rwFR{w}
	case hasHijacker | hasReaderFrom:
		return rwHR{w}
	case hasFlusher | hasHijacker | hasReaderFrom:
		return rwFHR{w}
	case hasPusher:
		return rwP{w}
	case hasFlusher | hasPusher:
		return rwFP{w}
	case hasHijacker | hasPusher:
		return rwHP{w}
	case hasFlusher | hasHijacker | hasPusher:
		return rwFHP{w}
	case hasReaderFrom | hasPusher:
		return rwRP{w}
	case hasFlusher | hasReaderFrom | hasPusher:
		return rwFRP{w}
	case hasHijacker | hasReaderFrom | hasPusher:
		return rwHRP{w}
	case hasFlusher | hasHijacker | hasReaderFrom | hasPusher:
		return rwFHRP{w}
	}
	return w
}

type (
	rwF    struct{ *responseWriter }
	rwH    struct{ *responseWriter }
	rwFH   struct{ *responseWriter }
	rwR    struct{ *responseWriter }
	rwFR   struct{ *responseWriter }
	rwHR   struct{ *responseWriter }
	rwFHR  struct{ *responseWriter }
	rwP    struct{ *responseWriter }
	rwFP   struct{ *responseWriter }
	rwHP   struct{ *responseWriter }
	rwFHP  struct{ *responseWriter }
	rwRP   struct{ *responseWriter }
	rwFRP  struct{ *responseWriter }
	rwHRP  struct{ *responseWriter }
	rwFHRP struct{ *responseWriter }
)

// http.Flusher

func (w rwF) Flush()               { w.flush() }
func (w rwF) FlushError() error    { return w.flushError() }
func (w rwFH) Flush()              { w.flush() }
func (w rwFH) FlushError() error   { return w.flushError() }
func (w rwFR) Flush()              { w.flush() }
func (w rwFR) FlushError() error   { return w.flushError() }
func (w rwFHR) Flush()             { w.flush() }
func (w rwFHR) FlushError() error  { return w.flushError() }
func (w rwFP) Flush()              { w.flush() }
func (w rwFP) FlushError() error   { return w.flushError() }
func (w rwFHP) Flush()             { w.flush() }
func (w rwFHP) FlushError() error  { return w.flushError() }
func (w rwFRP) Flush()             { w.flush() }
func (w rwFRP) FlushError() error  { return w.flushError() }
func (w rwFHRP) Flush()            { w.flush() }
func (w rwFHRP) FlushError() error { return w.flushError() }

// http.Hijacker

func (w rwH) Hijack() (net.Conn, *bufio.ReadWriter, error)    { return w.hijack() }
func (w rwFH) Hijack() (net.Conn, *bufio.ReadWriter, error)   { return w.hijack() }
func (w rwHR) Hijack() (net.Conn, *bufio.ReadWriter, error)   { return w.hijack() }
func (w rwFHR) Hijack() (net.Conn, *bufio.ReadWriter, error)  { return w.hijack() }
func (w rwHP) Hijack() (net.Conn, *bufio.ReadWriter, error)   { return w.hijack() }
func (w rwFHP) Hijack() (net.Conn, *bufio.ReadWriter, error)  { return w.hijack() }
func (w rwHRP) Hijack() (net.Conn, *bufio.ReadWriter, error)  { return w.hijack() }
func (w rwFHRP) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

// io.ReaderFrom

func (w rwR) ReadFrom(r io.Reader) (int64, error)    { return w.readFrom(r) }
func (w rwFR) ReadFrom(r io.Reader) (int64, error)   { return w.readFrom(r) }
func (w rwHR) ReadFrom(r io.Reader) (int64, error)   { return w.readFrom(r) }
func (w rwFHR) ReadFrom(r io.Reader) (int64, error)  { return w.readFrom(r) }
func (w rwRP) ReadFrom(r io.Reader) (int64, error)   { return w.readFrom(r) }
func (w rwFRP) ReadFrom(r io.Reader) (int64, error)  { return w.readFrom(r) }
func (w rwHRP) ReadFrom(r io.Reader) (int64, error)  { return w.readFrom(r) }
func (w rwFHRP) ReadFrom(r io.Reader) (int64, error) { return w.readFrom(r) }

// http.Pusher

func (w rwP) Push(t string, o *http.PushOptions) error    { return w.push(t, o) }
func (w rwFP) Push(t string, o *http.PushOptions) error   { return w.push(t, o) }
func (w rwHP) Push(t string, o *http.PushOptions) error   { return w.push(t, o) }
func (w rwFHP) Push(t string, o *http.PushOptions) error  { return w.push(t, o) }
func (w rwRP) Push(t string, o *http.PushOptions) error   { return w.push(t, o) }
func (w rwFRP) Push(t string, o *http.PushOptions) error  { return w.push(t, o) }
func (w rwHRP) Push(t string, o *http.PushOptions) error  { return w.push(t, o) }
func (w rwFHRP) Push(t string, o *http.PushOptions) error { return w.push(t, o) }
