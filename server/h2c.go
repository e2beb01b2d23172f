package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cleartext HTTP/2 (-h2c). net/http serves HTTP/2 to clients that start
// with its connection preface (prior knowledge) once Protocols has
// UnencryptedHTTP2. The other way in, an HTTP/1.1 request with "Upgrade:
// h2c" (RFC 7540, section 3.2; what curl --http2 does for http:// URLs),
// is done here: the request is answered "101 Switching Protocols", and the
// connection is handed back to the same http.Server as if the client had
// come with prior knowledge: the client's preface and first SETTINGS
// frame, then the upgraded request as a HEADERS frame on stream 1 (the
// stream whose response the client awaits), then whatever the client sends
// next.
//
// Requests with a body are served over HTTP/1.1 without upgrading (the
// server may always decline an upgrade), and so are those whose headers
// would not fit in one frame.

// h2cPreface is the client's connection preface.
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// HTTP/2 frame types and flags used here (RFC 7540, section 6).
const (
	frameHeaders     = 0x1
	frameSettings    = 0x4
	flagEndStream    = 0x1
	flagEndHeaders   = 0x4
	flagAck          = 0x1
	defaultFrameSize = 16384 // SETTINGS_MAX_FRAME_SIZE before the server's SETTINGS
)

// h2cUpgrades hands upgraded connections to the http.Server: it is a
// net.Listener that the drainer serves like the others.
type h2cUpgrades struct {
	addr    net.Addr
	conns   chan net.Conn
	timeout time.Duration // for the client's preface after the 101

	mu       sync.Mutex     // guards closed and the Add of pending
	closed   bool           // no more upgrades
	pending  sync.WaitGroup // upgrades between the 101 and the hand-over
	done     chan struct{}  // closed by Close
	doneOnce sync.Once
}

func newH2CUpgrades(addr net.Addr, timeout time.Duration) *h2cUpgrades {
	return &h2cUpgrades{addr: addr, conns: make(chan net.Conn), timeout: timeout, done: make(chan struct{})}
}

func (u *h2cUpgrades) Accept() (net.Conn, error) {
	select {
	case c := <-u.conns:
		return c, nil
	case <-u.done:
		return nil, net.ErrClosed
	}
}

// Close stops the upgrades: it waits for those under way to be handed
// over (each is bounded by the preface timeout), then stops Accept.
func (u *h2cUpgrades) Close() error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.pending.Wait()
	u.doneOnce.Do(func() { close(u.done) })
	return nil
}

func (u *h2cUpgrades) Addr() net.Addr { return u.addr }

// serveUpgrade upgrades the connection of r if r asks for h2c and can be
// upgraded, and reports whether it took the connection over (the handler
// must then do nothing more).
func (u *h2cUpgrades) serveUpgrade(w http.ResponseWriter, r *http.Request) bool {
	if r.TLS != nil || r.ProtoMajor != 1 || r.ContentLength != 0 || len(r.TransferEncoding) > 0 ||
		!hasToken(r.Header["Upgrade"], "h2c") || !hasToken(r.Header["Connection"], "upgrade") ||
		!hasToken(r.Header["Connection"], "http2-settings") || len(r.Header["Http2-Settings"]) != 1 {
		return false
	}
	if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.Header.Get("Http2-Settings"), "=")); err != nil {
		return false
	}
	block, ok := h2cHeaderBlock(r)
	if !ok {
		return false
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return false
	}
	u.pending.Add(1)
	u.mu.Unlock()
	defer u.pending.Done()

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	src := io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn)
	conn.SetDeadline(time.Now().Add(u.timeout))
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"); err != nil {
		conn.Close()
		return true
	}
	start, err := readClientStart(src)
	if err != nil {
		conn.Close()
		return true
	}
	conn.SetDeadline(time.Time{})
	start = appendFrame(start, frameHeaders, flagEndHeaders|flagEndStream, 1, block)
	select {
	case u.conns <- &upgradedConn{Conn: conn, r: io.MultiReader(bytes.NewReader(start), src)}:
	case <-u.done:
		conn.Close()
	}
	return true
}

// readClientStart reads the client's preface and its first frame, which
// must be SETTINGS, and returns them as read.
func readClientStart(r io.Reader) ([]byte, error) {
	b := make([]byte, len(h2cPreface)+9)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if string(b[:len(h2cPreface)]) != h2cPreface {
		return nil, errors.New("h2c: no client preface after the upgrade")
	}
	hdr := b[len(h2cPreface):]
	n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if hdr[3] != frameSettings || hdr[4]&flagAck != 0 || n%6 != 0 || n > defaultFrameSize {
		return nil, errors.New("h2c: the client's first frame is not SETTINGS")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return append(b, payload...), nil
}

// upgradedConn is a connection whose first bytes were read (and rebuilt)
// by the upgrade.
type upgradedConn struct {
	net.Conn
	r io.Reader
}

func (c *upgradedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// appendFrame appends one HTTP/2 frame.
func appendFrame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream&0x7fffffff)
	return append(b, payload...)
}

// connectionHeaders are the fields HTTP/2 forbids (RFC 7540, section
// 8.1.2.2), besides those the Connection header names.
var connectionHeaders = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "http2-settings": true, "host": true,
}

// h2cHeaderBlock encodes r's request line and headers as an HPACK header
// block of literal fields (RFC 7541, section 6.2.2: no indexing, no
// Huffman coding), or reports false if it would not fit in one frame.
func h2cHeaderBlock(r *http.Request) ([]byte, bool) {
	path := r.RequestURI
	if path == "" {
		path = r.URL.RequestURI()
	}
	b := appendLiteral(nil, ":method", r.Method)
	b = appendLiteral(b, ":scheme", "http")
	b = appendLiteral(b, ":authority", r.Host)
	b = appendLiteral(b, ":path", path)
	named := map[string]bool{}
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			named[strings.ToLower(strings.TrimSpace(tok))] = true
		}
	}
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if connectionHeaders[name] || named[name] {
			continue
		}
		for _, v := range vs {
			if name == "te" && !strings.EqualFold(v, "trailers") {
				continue
			}
			b = appendLiteral(b, name, v)
		}
	}
	return b, len(b) <= defaultFrameSize
}

// appendLiteral appends a "literal header field without indexing, new
// name".
func appendLiteral(b []byte, name, value string) []byte {
	b = append(b, 0)
	b = appendHPACKInt(b, 7, len(name))
	b = append(b, name...)
	b = appendHPACKInt(b, 7, len(value))
	return append(b, value...)
}

// appendHPACKInt appends n with an n-bit prefix (RFC 7541, section 5.1),
// the prefix's other bits zero.
func appendHPACKInt(b []byte, prefix uint, n int) []byte {
	max := 1<<prefix - 1
	if n < max {
		return append(b, byte(n))
	}
	b = append(b, byte(max))
	for n -= max; n >= 128; n >>= 7 {
		b = append(b, byte(n&0x7f|0x80))
	}
	return append(b, byte(n))
}

// hasToken reports whether the comma-separated values vs hold token
// (case-insensitive).
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
