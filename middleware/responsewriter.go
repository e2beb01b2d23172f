package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// responseWriter records the status code and body size of a response. It is
// pooled, so that wrapping a response costs no allocation.
//
// The *responseWriter itself implements only http.ResponseWriter,
// io.StringWriter (always safe: io.WriteString falls back to Write anyway)
// and Unwrap for http.ResponseController. writer returns it as one of
// sixteen types that add exactly the optional interfaces (http.Flusher,
// http.Hijacker, io.ReaderFrom, http.Pusher) that the wrapped writer has, so
// that a type assertion on the wrapped writer answers as it would on the
// original: a handler that checks for http.Hijacker before upgrading a
// websocket is not told "yes" on HTTP/2, and sendfile still finds ReadFrom.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	caps        uint8  // optional interfaces of ResponseWriter (has* bits)
	scratch     []byte // reused by the route lookup; kept across resets
}

// Optional interfaces of the wrapped writer, as bits of responseWriter.caps.
const (
	hasFlusher = 1 << iota
	hasHijacker
	hasReaderFrom
	hasPusher
)

// reset makes w record a response written to rw (nil: forget it, before w
// goes back to its pool).
func (w *responseWriter) reset(rw http.ResponseWriter) {
	*w = responseWriter{ResponseWriter: rw, scratch: w.scratch[:0]}
	if rw == nil {
		return
	}
	if _, ok := rw.(http.Flusher); ok {
		w.caps |= hasFlusher
	}
	if _, ok := rw.(http.Hijacker); ok {
		w.caps |= hasHijacker
	}
	if _, ok := rw.(io.ReaderFrom); ok {
		w.caps |= hasReaderFrom
	}
	if _, ok := rw.(http.Pusher); ok {
		w.caps |= hasPusher
	}
}

// setHeaderWritten records that the header has gone out with code, unless
// it already had.
func (w *responseWriter) setHeaderWritten(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = true
	}
}

// WriteHeader implements http.ResponseWriter. The first final status is
// recorded; informational 1xx responses other than 101 Switching Protocols
// may precede it, as net/http allows.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code >= 200 || code == http.StatusSwitchingProtocols {
		w.setHeaderWritten(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *responseWriter) Write(b []byte) (int, error) {
	w.setHeaderWritten(http.StatusOK)
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// WriteString implements io.StringWriter, so that io.WriteString into the
// response does not copy the string when the wrapped writer can take it.
func (w *responseWriter) WriteString(s string) (int, error) {
	w.setHeaderWritten(http.StatusOK)
	var n int
	var err error
	if sw, ok := w.ResponseWriter.(io.StringWriter); ok {
		n, err = sw.WriteString(s)
	} else {
		n, err = w.ResponseWriter.Write([]byte(s))
	}
	w.bytes += int64(n)
	return n, err
}

// Unwrap returns the wrapped writer, for http.ResponseController (which
// finds SetReadDeadline, SetWriteDeadline, EnableFullDuplex and anything
// else the wrapper does not implement through it).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The optional methods. writer exposes each only where ResponseWriter has it.

func (w *responseWriter) flush() {
	w.setHeaderWritten(http.StatusOK)
	w.ResponseWriter.(http.Flusher).Flush()
}

// flushError is what http.ResponseController.Flush calls: the wrapped
// writer's FlushError when it has one (net/http's does), so that a failed
// flush is reported rather than lost.
func (w *responseWriter) flushError() error {
	var err error
	if fe, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		err = fe.FlushError()
	} else {
		w.ResponseWriter.(http.Flusher).Flush()
	}
	if err == nil {
		w.setHeaderWritten(http.StatusOK)
	}
	return err
}

func (w *responseWriter) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

func (w *responseWriter) readFrom(r io.Reader) (int64, error) {
	w.setHeaderWritten(http.StatusOK)
	n, err := w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
	w.bytes += n
	return n, err
}

func (w *responseWriter) push(target string, opts *http.PushOptions) error {
	return w.ResponseWriter.(http.Pusher).Push(target, opts)
}

// code is the status to record for a handler that returned normally.
func (w *responseWriter) code() int {
	switch {
	case w.wroteHeader:
		return w.status
	case w.hijacked:
		// The handler took the connection over (a websocket upgrade, say)
		// without sending a status through the ResponseWriter.
		return http.StatusSwitchingProtocols
	}
	// A handler that writes nothing gets an implicit 200 from net/http.
	return http.StatusOK
}
