package middleware

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// AccessLog writes one line per request to w in Apache's combined log
// format, the format log collectors (Fluent Bit, Vector, Logstash, GoAccess)
// parse out of the box:
//
//	127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.1" 200 2326 "http://example.com/" "curl/8.0"
//
// The fields are the client address (Request.RemoteAddr without the port;
// forwarding headers are not trusted), "-" for identd, the basic-auth user
// or "-", the time the request arrived in the server's local zone, the
// request line as the client sent it, the final status, the body bytes
// sent ("-" for none, and for HEAD), the Referer and the User-Agent. Quotes,
// backslashes, control bytes and invalid UTF-8 are escaped as Apache
// escapes them (\", \\, \n, \xhh), and spaces too in the unquoted fields.
// Other UTF-8 is kept, except the characters some log readers end a line
// at or reorder a line by (C1 controls such as U+0085, U+2028, U+2029, the
// bidirectional controls), whose bytes are escaped as \xhh each. So every
// line is one line for every reader, and splits into its fields
// unambiguously.
//
// A line is written after the handler returns, with a single Write call;
// writes from concurrent requests are serialised, so w need not be safe for
// concurrent use. A failed write is ignored: losing a log line never fails
// a request. Status and size follow the same rule as Instrument's (see
// the package documentation): a handler that panics is logged as status
// 500 unless it had already sent a status, and the panic continues; a
// hijacked connection that sent no status through the ResponseWriter is
// logged as 101.
//
// Put AccessLog outside the router (r.Use first, or wrapping the mux) so
// that the request line is the one the client sent.
func AccessLog(w io.Writer) func(http.Handler) http.Handler {
	l := &accessLogger{out: w}
	l.writers.New = func() any { return new(responseWriter) }
	l.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	return l.wrap
}

type accessLogger struct {
	mu  sync.Mutex // guards out
	out io.Writer

	writers sync.Pool // of *responseWriter
	bufs    sync.Pool // of *[]byte
}

func (l *accessLogger) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := l.writers.Get().(*responseWriter)
		rw.reset(w, r)
		returned := false
		defer func() {
			// No recover: a panic goes on unchanged to whatever handles it.
			l.log(r, start, rw.code(returned), rw.sent())
			rw.release()
			l.writers.Put(rw)
		}()
		// writer() has exactly the optional interfaces of w (Flusher,
		// Hijacker, ReaderFrom, Pusher), so handlers' type assertions
		// answer as they would without the access log.
		next.ServeHTTP(rw.writer(), r)
		returned = true
	})
}

// clfTime is the layout of %t without its brackets.
const clfTime = "02/Jan/2006:15:04:05 -0700"

func (l *accessLogger) log(r *http.Request, start time.Time, code int, n int64) {
	bp := l.bufs.Get().(*[]byte)
	b := (*bp)[:0]

	b = appendToken(b, remoteHost(r.RemoteAddr))
	b = append(b, " - "...)
	user, _, _ := r.BasicAuth()
	b = appendToken(b, user)
	b = append(b, " ["...)
	b = start.AppendFormat(b, clfTime)
	b = append(b, "] \""...)
	b = appendEscaped(b, r.Method, false)
	b = append(b, ' ')
	uri := r.RequestURI
	if uri == "" && r.URL != nil {
		// A request built in a test or by a client has no RequestURI.
		uri = r.URL.RequestURI()
	}
	b = appendEscaped(b, uri, false)
	b = append(b, ' ')
	b = appendEscaped(b, r.Proto, false)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if n > 0 {
		b = strconv.AppendInt(b, n, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " \""...)
	b = appendQuotedOrDash(b, r.Referer())
	b = append(b, "\" \""...)
	b = appendQuotedOrDash(b, r.UserAgent())
	b = append(b, "\"\n"...)

	l.mu.Lock()
	l.out.Write(b)
	l.mu.Unlock()

	*bp = b
	if cap(b) <= 64<<10 {
		l.bufs.Put(bp)
	}
}

// remoteHost strips the port of a RemoteAddr ("1.2.3.4:5", "[::1]:5").
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// appendToken appends an unquoted field: "-" when empty, escaped like a
// quoted field and with spaces as \x20, so that it cannot shift the fields
// after it.
func appendToken(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s, true)
}

func appendQuotedOrDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s, false)
}

const hexDigits = "0123456789abcdef"

// appendEscaped escapes s as Apache's ap_escape_logitem does: \" and \\,
// the short escapes \b \n \r \t \v, and \xhh for other control bytes and
// DEL. Unlike Apache, valid UTF-8 is kept as it is (log collectors read
// UTF-8), except the characters of breaksLines, whose bytes become \xhh
// each (U+2028 is \xe2\x80\xa8), as do bytes that are not valid UTF-8.
// With space set, spaces become \x20 too.
func appendEscaped(b []byte, s string, space bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\v':
			b = append(b, `\v`...)
		case c < 0x20 || c == 0x7f || (c == ' ' && space):
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && size == 1) || breaksLines(r) {
				for _, c := range []byte(s[i : i+size]) {
					b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
				}
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return b
}

// breaksLines reports whether r, outside ASCII, ends a line for some log
// reader or changes how one reads: the C1 controls U+0080-U+009F (U+0085
// NEL among them: Python's str.splitlines, Java and XML end lines there),
// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR (JavaScript and
// Python too), and the bidirectional formatting characters (U+061C,
// U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), which make a displayed
// line show its fields in another order.
func breaksLines(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x2028 && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
