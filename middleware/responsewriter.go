package middleware

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"path"
	"reflect"
	"runtime"
	"strings"
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
	req         *http.Request // the request answered; its context holds the *http.Server
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	caps        uint8 // optional interfaces of ResponseWriter (has* bits)

	// Kept across resets:
	scratch  []byte       // reused by the route lookup
	capsType reflect.Type // the writer type whose interfaces are in typeCaps
	typeCaps uint8
}

// Optional interfaces of the wrapped writer, as bits of responseWriter.caps.
const (
	hasFlusher = 1 << iota
	hasHijacker
	hasReaderFrom
	hasPusher
)

// reset makes w record the response to r written to rw.
func (w *responseWriter) reset(rw http.ResponseWriter, r *http.Request) {
	w.ResponseWriter, w.req = rw, r
	w.status, w.bytes, w.wroteHeader, w.hijacked = 0, 0, false, false
	// A pooled writer wraps the same type of writer request after request
	// (net/http's, one per protocol): its interfaces are looked up once.
	if t := reflect.TypeOf(rw); t != w.capsType {
		w.capsType, w.typeCaps = t, capsOf(rw)
	}
	w.caps = w.typeCaps
}

// release drops w's references to its response, before w goes back to its
// pool; reset sets everything else.
func (w *responseWriter) release() {
	w.ResponseWriter, w.req = nil, nil
}

// capsOf returns the optional interfaces of rw as has* bits.
func capsOf(rw http.ResponseWriter) uint8 {
	var caps uint8
	if rw == nil {
		return 0
	}
	if _, ok := rw.(http.Flusher); ok {
		caps |= hasFlusher
	}
	if _, ok := rw.(http.Hijacker); ok {
		caps |= hasHijacker
	}
	if _, ok := rw.(io.ReaderFrom); ok {
		caps |= hasReaderFrom
	}
	if _, ok := rw.(http.Pusher); ok {
		caps |= hasPusher
	}
	return caps
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
// may precede it, as net/http allows. A code net/http refuses (below 100 or
// above 999) is passed on unrecorded: net/http panics.
func (w *responseWriter) WriteHeader(code int) {
	if (w.wroteHeader || w.hijacked) && w.refuseHeader() {
		return
	}
	if code == http.StatusSwitchingProtocols || (code >= 200 && code <= 999) {
		w.setHeaderWritten(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

// refuseHeader handles a WriteHeader that net/http's HTTP/1 server ignores
// with a log line (a second one, or one after a hijack) when w wraps that
// server's own writer: it logs the line net/http would, through the
// server's ErrorLog, but naming the first caller outside this package and
// net/http (the application's line) where net/http would name the wrapper.
// It reports whether it did; any other writer (HTTP/2, which ignores the
// call silently, or another wrapper) gets the call.
func (w *responseWriter) refuseHeader() bool {
	if w.req == nil || !isServerResponse(w.ResponseWriter) {
		return false
	}
	what := "superfluous response.WriteHeader call"
	if w.hijacked {
		what = "response.WriteHeader on hijacked connection"
	}
	f := externalCaller()
	srv, _ := w.req.Context().Value(http.ServerContextKey).(*http.Server)
	if srv != nil && srv.ErrorLog != nil {
		srv.ErrorLog.Printf("http: %s from %s (%s:%d)", what, f.Function, path.Base(f.File), f.Line)
	} else {
		log.Printf("http: %s from %s (%s:%d)", what, f.Function, path.Base(f.File), f.Line)
	}
	return true
}

// isServerResponse reports whether rw is net/http's HTTP/1 server writer
// (its unexported *http.response).
func isServerResponse(rw http.ResponseWriter) bool {
	t := reflect.TypeOf(rw)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "net/http" && t.Elem().Name() == "response"
}

// externalCaller returns the first frame of the calling goroutine's stack
// outside this package and net/http: the code that called the
// ResponseWriter method, through any of herd's wrappers and net/http's
// helpers (http.Error, say), as net/http finds it for its own writer.
func externalCaller() runtime.Frame {
	self := reflect.TypeFor[responseWriter]().PkgPath() + "."
	var pc [32]uintptr
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc[:])])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, self) && !strings.HasPrefix(f.Function, "net/http.") {
			return f
		}
		if !more {
			return f
		}
	}
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

// code is the status to record, the one the client got; returned is false
// when the handler panicked (or called runtime.Goexit). Both recorders,
// the metrics and the access log, record it.
func (w *responseWriter) code(returned bool) int {
	switch {
	case w.wroteHeader:
		// Sent before any panic: a recoverer's 500 would be a second
		// WriteHeader, ignored, and a reset connection still has it.
		return w.status
	case w.hijacked:
		// The handler took the connection over (a websocket upgrade, say)
		// without sending a status through the ResponseWriter: whatever it
		// wrote there, net/http can no longer answer.
		return http.StatusSwitchingProtocols
	case !returned:
		// No status went out: the client gets a 500 from a recoverer, or
		// a connection closed without a response.
		return http.StatusInternalServerError
	}
	// A handler that writes nothing gets an implicit 200 from net/http.
	return http.StatusOK
}

// sent is the number of body bytes the client got: those written through
// w, none for a HEAD request (net/http discards them).
func (w *responseWriter) sent() int64 {
	if w.req != nil && w.req.Method == http.MethodHead {
		return 0
	}
	return w.bytes
}
