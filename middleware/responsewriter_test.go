package middleware

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeWriter implements every optional interface and records calls; the
// anonymous structs of fakeWith expose only some of them.
type fakeWriter struct {
	header   http.Header
	status   int
	body     strings.Builder
	flushed  bool
	hijacked bool
	readFrom bool
	pushed   string
}

func (f *fakeWriter) Header() http.Header {
	if f.header == nil {
		f.header = http.Header{}
	}
	return f.header
}
func (f *fakeWriter) WriteHeader(code int) {
	if f.status == 0 {
		f.status = code
	}
}
func (f *fakeWriter) Write(b []byte) (int, error) { return f.body.Write(b) }
func (f *fakeWriter) Flush()                      { f.flushed = true }
func (f *fakeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	f.hijacked = true
	return nil, nil, nil
}
func (f *fakeWriter) ReadFrom(r io.Reader) (int64, error) {
	f.readFrom = true
	return io.Copy(&f.body, r)
}
func (f *fakeWriter) Push(target string, _ *http.PushOptions) error {
	f.pushed = target
	return nil
}

// fakeWith returns f with exactly the optional interfaces of caps.
func fakeWith(f *fakeWriter, caps uint8) http.ResponseWriter {
	type (
		W = http.ResponseWriter
		F = http.Flusher
		H = http.Hijacker
		R = io.ReaderFrom
		P = http.Pusher
	)
	switch caps {
	case 0:
		return struct{ W }{f}
	case hasFlusher:
		return struct {
			W
			F
		}{f, f}
	case hasHijacker:
		return struct {
			W
			H
		}{f, f}
	case hasFlusher | hasHijacker:
		return struct {
			W
			F
			H
		}{f, f, f}
	case hasReaderFrom:
		return struct {
			W
			R
		}{f, f}
	case hasFlusher | hasReaderFrom:
		return struct {
			W
			F
			R
		}{f, f, f}
	case hasHijacker | hasReaderFrom:
		return struct {
			W
			H
			R
		}{f, f, f}
	case hasFlusher | hasHijacker | hasReaderFrom:
		return struct {
			W
			F
			H
			R
		}{f, f, f, f}
	case hasPusher:
		return struct {
			W
			P
		}{f, f}
	case hasFlusher | hasPusher:
		return struct {
			W
			F
			P
		}{f, f, f}
	case hasHijacker | hasPusher:
		return struct {
			W
			H
			P
		}{f, f, f}
	case hasFlusher | hasHijacker | hasPusher:
		return struct {
			W
			F
			H
			P
		}{f, f, f, f}
	case hasReaderFrom | hasPusher:
		return struct {
			W
			R
			P
		}{f, f, f}
	case hasFlusher | hasReaderFrom | hasPusher:
		return struct {
			W
			F
			R
			P
		}{f, f, f, f}
	case hasHijacker | hasReaderFrom | hasPusher:
		return struct {
			W
			H
			R
			P
		}{f, f, f, f}
	case hasFlusher | hasHijacker | hasReaderFrom | hasPusher:
		return f
	}
	panic("bad caps")
}

// TestWriterKeepsExactlyTheOptionalInterfaces checks all sixteen
// combinations: each interface is offered exactly when the wrapped writer
// has it, works, and is recorded.
func TestWriterKeepsExactlyTheOptionalInterfaces(t *testing.T) {
	names := []string{"Flusher", "Hijacker", "ReaderFrom", "Pusher"}
	for caps := uint8(0); caps < 16; caps++ {
		var desc []string
		for i, n := range names {
			if caps&(1<<i) != 0 {
				desc = append(desc, n)
			}
		}
		t.Run("with "+strings.Join(desc, "+"), func(t *testing.T) {
			f := &fakeWriter{}
			under := fakeWith(f, caps)
			rw := new(responseWriter)
			rw.reset(under, nil)
			w := rw.writer()

			if got := w.(interface{ Unwrap() http.ResponseWriter }).Unwrap(); got != under {
				t.Errorf("Unwrap returned %T, want the wrapped writer", got)
			}
			fl, isF := w.(http.Flusher)
			_, isFE := w.(interface{ FlushError() error })
			hj, isH := w.(http.Hijacker)
			rf, isR := w.(io.ReaderFrom)
			pu, isP := w.(http.Pusher)
			for i, has := range []bool{isF, isH, isR, isP} {
				if want := caps&(1<<i) != 0; has != want {
					t.Errorf("%s: offered %v, want %v", names[i], has, want)
				}
			}
			if isFE != isF {
				t.Errorf("FlushError offered %v, Flush %v", isFE, isF)
			}
			if isP {
				if err := pu.Push("/style.css", nil); err != nil || f.pushed != "/style.css" {
					t.Errorf("Push: %v, pushed %q", err, f.pushed)
				}
			}
			if isR {
				n, err := rf.ReadFrom(strings.NewReader("abc"))
				if n != 3 || err != nil || !f.readFrom {
					t.Errorf("ReadFrom: %d, %v, reached the wrapped writer: %v", n, err, f.readFrom)
				}
				if rw.bytes != 3 || rw.code(true) != http.StatusOK {
					t.Errorf("after ReadFrom: %d bytes, code %d; want 3, 200", rw.bytes, rw.code(true))
				}
			}
			if isF {
				fl.Flush()
				if !f.flushed || !rw.wroteHeader {
					t.Errorf("Flush: reached the wrapped writer %v, header recorded %v", f.flushed, rw.wroteHeader)
				}
			}
			// http.ResponseController finds Flush through the wrapper or,
			// when the wrapped writer cannot flush, reports it.
			err := http.NewResponseController(w).Flush()
			if isF && err != nil {
				t.Errorf("ResponseController.Flush: %v", err)
			}
			if !isF && !errors.Is(err, http.ErrNotSupported) {
				t.Errorf("ResponseController.Flush without a Flusher: %v, want ErrNotSupported", err)
			}
			if isH {
				if _, _, err := hj.Hijack(); err != nil || !f.hijacked || !rw.hijacked {
					t.Errorf("Hijack: %v; reached the wrapped writer %v, recorded %v", err, f.hijacked, rw.hijacked)
				}
			} else if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
				t.Errorf("ResponseController.Hijack without a Hijacker: %v, want ErrNotSupported", err)
			}
		})
	}
}

func TestWriterRecordsStatusAndSize(t *testing.T) {
	cases := []struct {
		name  string
		serve func(w http.ResponseWriter)
		code  int
		bytes int64
	}{
		{"nothing written", func(w http.ResponseWriter) {}, 200, 0},
		{"Write", func(w http.ResponseWriter) { w.Write([]byte("hello")) }, 200, 5},
		{"WriteString", func(w http.ResponseWriter) { io.WriteString(w, "hello") }, 200, 5},
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(204) }, 204, 0},
		{"superfluous WriteHeader", func(w http.ResponseWriter) {
			w.WriteHeader(404)
			w.WriteHeader(200)
			w.Write([]byte("x"))
		}, 404, 1},
		{"Write then WriteHeader", func(w http.ResponseWriter) {
			w.Write([]byte("x"))
			w.WriteHeader(500)
		}, 200, 1},
		{"103 Early Hints first", func(w http.ResponseWriter) {
			w.WriteHeader(103)
			w.WriteHeader(201)
		}, 201, 0},
		{"101 is final", func(w http.ResponseWriter) { w.WriteHeader(101) }, 101, 0},
		{"hijacked", func(w http.ResponseWriter) { w.(http.Hijacker).Hijack() }, 101, 0},
		{"hijacked after a status", func(w http.ResponseWriter) {
			w.WriteHeader(101)
			w.(http.Hijacker).Hijack()
		}, 101, 0},
		{"Flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200, 0},
		{"ReadFrom", func(w http.ResponseWriter) { w.(io.ReaderFrom).ReadFrom(strings.NewReader("abcd")) }, 200, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rw := new(responseWriter)
			rw.reset(&fakeWriter{}, nil)
			c.serve(rw.writer())
			if got := rw.code(true); got != c.code {
				t.Errorf("code %d, want %d", got, c.code)
			}
			if rw.bytes != c.bytes {
				t.Errorf("bytes %d, want %d", rw.bytes, c.bytes)
			}
		})
	}
}

// TestWriteStringWithoutStringWriter: WriteString falls back to Write.
func TestWriteStringWithoutStringWriter(t *testing.T) {
	f := &fakeWriter{}
	rw := new(responseWriter)
	rw.reset(struct{ http.ResponseWriter }{f}, nil)
	if n, err := io.WriteString(rw.writer(), "abc"); n != 3 || err != nil || f.body.String() != "abc" {
		t.Errorf("WriteString: %d, %v, body %q", n, err, f.body.String())
	}
}

// TestResetForgets: a pooled writer keeps no reference to its last
// response once released, and a reset writer nothing of it but its
// scratch buffer.
func TestResetForgets(t *testing.T) {
	rw := new(responseWriter)
	rw.reset(fakeWith(&fakeWriter{}, hasFlusher|hasHijacker), httptest.NewRequest("GET", "/", nil))
	w := rw.writer()
	w.Write([]byte("abc"))
	w.(http.Hijacker).Hijack()
	rw.scratch = append(rw.scratch, "abc"...)
	rw.release()
	if rw.ResponseWriter != nil || rw.req != nil {
		t.Errorf("release left %+v", rw)
	}
	rw.reset(fakeWith(&fakeWriter{}, hasPusher), nil)
	if rw.wroteHeader || rw.hijacked || rw.status != 0 || rw.caps != hasPusher || rw.bytes != 0 {
		t.Errorf("reset left %+v", rw)
	}
	if cap(rw.scratch) == 0 {
		t.Errorf("scratch cap %d, want kept", cap(rw.scratch))
	}
}
