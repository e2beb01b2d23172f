package workermetrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/herdhttp/herd/metrics"
)

// DefaultInterval is how often a Publisher writes its snapshot file when
// PublisherOpts.Interval is zero.
const DefaultInterval = time.Second

// answerTimeout bounds how long a Publisher spends on one request for a
// fresh snapshot (gathering, then writing it to a master that may have
// stopped reading).
const answerTimeout = 5 * time.Second

// PublisherOpts configures a Publisher. The zero value works.
type PublisherOpts struct {
	// Interval is how often the snapshot file is written; default
	// DefaultInterval (1s). A counter increment made after the last
	// snapshot of a worker that is then killed is lost, so this bounds the
	// loss to the increments of one interval.
	Interval time.Duration
	// Logger receives errors (a failing gatherer, a full filesystem), each
	// distinct message once until it stops recurring. Zero: not logged.
	Logger *slog.Logger
}

// Publisher is a worker's side: it gathers g and publishes the result for
// the master, as a snapshot file written every interval and as a fresh
// snapshot for every connection to its unix socket. See the package
// documentation.
type Publisher struct {
	g        metrics.Gatherer
	dir      string
	inst     string
	interval time.Duration
	logger   *slog.Logger

	ln    net.Listener
	quit  chan struct{}
	loops sync.WaitGroup // the ticker and the accept loop
	conns sync.WaitGroup // the connections being served

	openMu  sync.Mutex            // guards open and closing
	open    map[net.Conn]struct{} // the connections being served, closed by Close
	closing bool

	mu   sync.Mutex // guards seq and the gathers: snapshots are numbered in gather order
	seq  uint64
	bufs chan []byte // buffers of past answers, for the next ones

	fileMu   sync.Mutex // serialises writeFile and guards the fields below
	fileBuf  []byte     // the snapshot being written, reused
	written  []byte     // the snapshot in the file (the buffer before fileBuf)
	inFile   bool       // written is in the file
	logMu    sync.Mutex // guards lastLog
	lastLog  map[string]string
	closeErr error
	once     sync.Once
}

// NewPublisher publishes what g gathers for the worker with file id id
// (letters, digits and '-') into dir, which it creates (mode 0700) if
// needed: it listens on its socket, writes a first snapshot and starts the
// interval. Call Close when the worker stops.
func NewPublisher(dir, id string, g metrics.Gatherer, opts PublisherOpts) (*Publisher, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if g == nil {
		return nil, errors.New("workermetrics: nil gatherer")
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	p := &Publisher{
		g:        g,
		dir:      dir,
		inst:     id + "_" + strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano(), 36),
		interval: opts.Interval,
		logger:   opts.Logger,
		quit:     make(chan struct{}),
		bufs:     make(chan []byte, 2),
		open:     map[net.Conn]struct{}{},
		lastLog:  map[string]string{},
	}
	if p.interval <= 0 {
		p.interval = DefaultInterval
	}
	// The socket first: a snapshot file without a socket means a worker
	// that is gone (see Gatherer).
	err := withSockPath(dir, p.inst+sockSuffix, func(path string) error {
		ln, err := net.Listen("unix", path)
		if err != nil {
			return err
		}
		// Unlink by its real path in Close: a /proc/self/fd path would
		// name another directory, or nothing, by then.
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		p.ln = ln
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workermetrics: listen: %w", err)
	}
	sock := filepath.Join(dir, p.inst+sockSuffix)
	if err := os.Chmod(sock, 0o600); err != nil {
		p.ln.Close()
		os.Remove(sock)
		return nil, fmt.Errorf("workermetrics: %w", err)
	}
	if err := p.writeFile(); err != nil {
		p.ln.Close()
		os.Remove(sock)
		return nil, err
	}
	p.loops.Add(2)
	go p.tick()
	go p.accept()
	return p, nil
}

// makeDir creates dir (mode 0700) unless it exists, and checks that it is a
// directory of this user, not a symbolic link.
func makeDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("workermetrics: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("workermetrics: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("workermetrics: %s is not a directory", dir)
	}
	return nil
}

// Close stops the interval, writes a last snapshot file, then closes the
// socket (from then on the master takes the worker for gone and folds its
// last snapshot into its totals, so the file comes first) and waits for the
// answers in progress. Calling it again returns the first result.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		close(p.quit)
		p.closeErr = p.writeFile()
		p.ln.Close()
		p.loops.Wait()
		os.Remove(filepath.Join(p.dir, p.inst+sockSuffix))
		p.openMu.Lock()
		p.closing = true
		for c := range p.open {
			c.Close() // a master's connection waiting for its next request
		}
		p.openMu.Unlock()
		p.conns.Wait()
	})
	return p.closeErr
}

// Flush writes a snapshot file now.
func (p *Publisher) Flush() error { return p.writeFile() }

func (p *Publisher) tick() {
	defer p.loops.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			if err := p.writeFile(); err != nil {
				p.log("writing the snapshot", err)
			} else {
				p.forget("writing the snapshot")
			}
		}
	}
}

func (p *Publisher) accept() {
	defer p.loops.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.quit:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: wait a little instead of spinning.
			p.log("accepting", err)
			select {
			case <-p.quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		p.conns.Add(1)
		go p.answer(c)
	}
}

// answer serves a connection of the master: a fresh snapshot at once, then
// one for every byte the master sends (a request on a connection it
// keeps), until the master closes it or Close.
func (p *Publisher) answer(c net.Conn) {
	defer p.conns.Done()
	defer c.Close()
	p.openMu.Lock()
	if p.closing {
		p.openMu.Unlock()
		return
	}
	p.open[c] = struct{}{}
	p.openMu.Unlock()
	defer func() {
		p.openMu.Lock()
		delete(p.open, c)
		p.openMu.Unlock()
	}()
	var req [1]byte
	for {
		c.SetDeadline(time.Now().Add(answerTimeout))
		if p.writeSnapshot(c) != nil {
			return
		}
		c.SetDeadline(time.Time{})
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
	}
}

// writeSnapshot gathers, encodes and writes a numbered snapshot to w, in a
// buffer kept for the next answers.
func (p *Publisher) writeSnapshot(w io.Writer) error {
	var b []byte
	select {
	case b = <-p.bufs:
	default:
	}
	p.mu.Lock()
	b = p.snapshotLocked(b[:0])
	keep := cap(b) <= 2*len(b)+4096 // not one of a much larger past
	p.mu.Unlock()
	_, err := w.Write(b)
	if keep {
		select {
		case p.bufs <- b:
		default:
		}
	}
	return err
}

// snapshotLocked gathers and appends a numbered snapshot to b. The caller
// holds p.mu.
func (p *Publisher) snapshotLocked(b []byte) []byte {
	fams, err := p.g.Gather()
	if err != nil {
		// Publish what was gathered: a client_golang registry returns
		// every family it could together with the error.
		p.log("gathering", err)
	} else {
		p.forget("gathering")
	}
	p.seq++
	b = appendSnapshot(b, p.seq, fams)
	return b
}

// writeFile writes a snapshot to a temporary file and renames it over the
// snapshot file: a reader sees the previous snapshot or this one, never a
// part. On error (a full filesystem) the previous snapshot stays. A
// snapshot whose families are those of the file (only its sequence number
// differs) is not written: the file already says what it would.
func (p *Publisher) writeFile() error {
	p.fileMu.Lock()
	defer p.fileMu.Unlock()
	p.mu.Lock()
	buf := p.snapshotLocked(p.fileBuf[:0])
	p.mu.Unlock()
	p.fileBuf = buf
	if p.inFile && bytes.Equal(buf[headerSize:], p.written[headerSize:]) {
		return nil
	}
	tmp := filepath.Join(p.dir, p.inst+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("workermetrics: %w", err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(p.dir, p.inst+snapSuffix))
	}
	if err != nil {
		os.Remove(tmp)
		p.inFile = false
		return fmt.Errorf("workermetrics: write snapshot: %w", err)
	}
	p.fileBuf, p.written, p.inFile = p.written, buf, true
	return nil
}

// log logs err under what, unless the same message was the last one logged
// for what.
func (p *Publisher) log(what string, err error) {
	if p.logger == nil {
		return
	}
	msg := err.Error()
	p.logMu.Lock()
	repeated := p.lastLog[what] == msg
	p.lastLog[what] = msg
	p.logMu.Unlock()
	if !repeated {
		p.logger.Error("workermetrics: "+what, "err", err)
	}
}

// forget notes that what succeeded: its next error is logged again.
func (p *Publisher) forget(what string) {
	p.logMu.Lock()
	delete(p.lastLog, what)
	p.logMu.Unlock()
}
