package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Sample is one entry of a file as read at scan time.
type Sample struct {
	Key       *Key // decoded once and shared by every file holding the same key bytes; do not modify
	Value     float64
	Timestamp float64 // 0 in the legacy layout
}

// FileSamples is what one file held at scan time, in file order.
//
// The Samples of a FileSamples returned by Reader.ScanDir belong to the Reader: they are
// valid until its next ScanDir or Close, which refills them in place (a scrape allocates
// nothing for them). Do not modify them; copy what must outlive the next scan.
type FileSamples struct {
	Path    string
	Type    string // "counter", "gauge", "histogram" or "summary", from the file name
	Mode    string // the gauge mode ("all", "livesum", ...); "" for other types
	ID      string // the <id> part of the name
	Layout  Layout
	Samples []Sample
}

// SkippedFile is a file a scan passed over, and why. Reason wraps one of
// ErrEmptyFile, ErrTruncated, ErrCorrupt, ErrUnknownName or an I/O error.
type SkippedFile struct {
	Path   string
	Reason error
}

// ReaderStats counts a Reader's work, for tests and for a scrape-cost metric.
type ReaderStats struct {
	Files         int    // files currently cached (mapped)
	Keys          int    // distinct keys currently interned
	ParsedEntries uint64 // entries parsed since NewReader
	DecodedKeys   uint64 // keys decoded since NewReader (the rest were found interned)
}

// Reader reads a directory of metric files again and again, cheaply: it maps
// each file read-only, remembers how far it parsed it and the keys it found,
// and on later scans parses only the entries appended since, then loads every
// value with an atomic load. Identical key bytes in many files (every worker
// has the same series) are decoded once and share one *Key.
//
// A Reader is safe for concurrent use; scans are serialised. Close releases
// its mappings.
type Reader struct {
	mu    sync.Mutex // guards all fields; held for a whole scan
	files map[string]*readerFile
	keys  map[string]*internedKey
	stats ReaderStats
	gen   uint64        // scans so far; a file seen in scan gen has seen == gen
	out   []FileSamples // ScanDir's result, reused
}

type internedKey struct {
	raw  string // the key bytes, its map key
	key  *Key
	refs int // entries (over all cached files) that use it
}

// readerFile is the cached state of one file.
type readerFile struct {
	dev, ino    uint64
	data        []byte // read-only mapping of the file's size at mapping time
	layout      Layout
	layoutKnown bool
	parsed      int // offset up to which entries are parsed
	entries     []readerEntry
	samples     []Sample // entries' samples, refilled in place by every scan
	seen        uint64   // the Reader's gen of the last scan that listed the file
}

type readerEntry struct {
	key *internedKey
	k   *Key // key.key, here to spare a scan the indirection
	off int  // value offset
}

// NewReader returns an empty Reader.
func NewReader() *Reader {
	return &Reader{files: make(map[string]*readerFile), keys: make(map[string]*internedKey)}
}

// ScanDir reads every *.db file of dir (sorted by name). Files that are not
// usable metric files (zero length, truncated, corrupt, foreign, unknown name
// prefix) are skipped and listed in skipped, never an error: one bad file must
// not blank the whole scrape, as it does in client_python. Files that
// disappeared are forgotten. err is only for an unreadable dir.
//
// files and every Samples slice in it are the Reader's and are reused: they
// are valid until the next ScanDir or Close. A steady-state scan (no new
// entries) allocates only for the directory listing.
func (r *Reader) ScanDir(dir string) (files []FileSamples, skipped []SkippedFile, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("mmapstore: scan %s: %w", dir, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.files == nil {
		r.files = make(map[string]*readerFile)
		r.keys = make(map[string]*internedKey)
	}
	// A file truncated under our mapping makes the next load fault; turn that
	// into a recoverable panic (see scanFile) instead of killing the master.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	r.gen++
	files = r.out[:0]
	clean := filepath.Clean(dir)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".db") {
			continue
		}
		path := filepath.Join(clean, name)
		typ, mode, id, ok := ParseFileName(name)
		if !ok {
			r.forgetLocked(path)
			skipped = append(skipped, SkippedFile{path, fmt.Errorf("%w: %s", ErrUnknownName, name)})
			continue
		}
		fs := FileSamples{Path: path, Type: typ, Mode: mode, ID: id}
		gone, err := r.scanFileLocked(path, &fs)
		switch {
		case gone:
			r.forgetLocked(path)
		case err != nil:
			r.forgetLocked(path)
			skipped = append(skipped, SkippedFile{path, err})
		default:
			files = append(files, fs)
		}
	}
	for path, rf := range r.files {
		if rf.seen != r.gen && filepath.Dir(path) == clean {
			r.forgetLocked(path)
		}
	}
	clear(files[len(files):cap(files)]) // drop references to forgotten files' samples
	r.out = files
	return files, skipped, nil
}

// scanFileLocked brings the cached state of path up to date and fills
// fs.Samples. gone reports a file that vanished since the directory listing.
func (r *Reader) scanFileLocked(path string, fs *FileSamples) (gone bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	rf := r.files[path]
	if rf != nil && (rf.dev != uint64(st.Dev) || rf.ino != uint64(st.Ino)) {
		r.forgetLocked(path) // replaced: start over
		rf = nil
	}
	if st.Size == 0 {
		return false, ErrEmptyFile
	}
	if st.Size > maxFileSize {
		return false, fmt.Errorf("%w: %d bytes", ErrCorrupt, st.Size)
	}
	if rf == nil {
		rf = &readerFile{dev: uint64(st.Dev), ino: uint64(st.Ino), parsed: headerSize}
		r.files[path] = rf
	}
	rf.seen = r.gen
	if int(st.Size) != len(rf.data) {
		if err := rf.remap(path); err != nil {
			return errors.Is(err, unix.ENOENT), err
		}
	}
	return false, guardFault(func() error { return r.readLocked(path, rf, fs) })
}

// readLocked parses what was appended to rf and loads every value.
func (r *Reader) readLocked(path string, rf *readerFile, fs *FileSamples) error {
	if len(rf.data) >= headerSize && readUsed(rf.data) > len(rf.data) {
		// The writer grew the file after our stat: map it again before
		// calling it truncated.
		if err := rf.remap(path); err != nil {
			return err
		}
	}
	used, err := checkHeader(rf.data)
	if err != nil {
		return err
	}
	if used < rf.parsed { // rewritten in place: not by a writer of ours; start over
		r.releaseEntriesLocked(rf)
	}
	if used > rf.parsed {
		if err := r.parseLocked(rf, used); err != nil {
			return err
		}
	}
	fs.Layout = rf.layout
	fs.Samples = rf.samples
	// Only values change between scans: the keys were stored when the entries
	// were parsed (rewritten only if a caller changed them), so a steady scan
	// writes no pointers.
	ss := rf.samples[:len(rf.entries)]
	if rf.layout == Current {
		for i, e := range rf.entries {
			s := &ss[i]
			if s.Key != e.k {
				s.Key = e.k
			}
			p := word(rf.data, e.off)
			s.Value = math.Float64frombits(atomic.LoadUint64(p))
			s.Timestamp = math.Float64frombits(atomic.LoadUint64(tsWord(p)))
		}
		return nil
	}
	for i, e := range rf.entries {
		s := &ss[i]
		if s.Key != e.k {
			s.Key = e.k
		}
		s.Value = math.Float64frombits(atomic.LoadUint64(word(rf.data, e.off)))
		s.Timestamp = 0
	}
	return nil
}

// guardFault runs fn and turns a memory fault into an ErrTruncated error. A
// file that another process truncates under our read-only mapping makes the
// next load from the lost pages raise SIGBUS; with debug.SetPanicOnFault (set
// by ScanDir) that is a panic we can recover from. Any other panic is a bug
// and is not swallowed.
func guardFault(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(interface{ Addr() uintptr }); !ok {
				panic(p)
			}
			err = fmt.Errorf("%w: memory fault while reading (file shrank?): %v", ErrTruncated, p)
		}
	}()
	return fn()
}

// remap maps the file at its current size (from fstat). The identity is
// checked on the opened descriptor, so a replacement racing with the stat
// starts over.
func (rf *readerFile) remap(path string) error {
	fd, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return err
	}
	if uint64(st.Dev) != rf.dev || uint64(st.Ino) != rf.ino {
		return fmt.Errorf("%w: replaced while being read", ErrTruncated)
	}
	if st.Size < headerSize {
		if st.Size == 0 {
			return ErrEmptyFile
		}
		return fmt.Errorf("%w: %d bytes, shorter than the header", ErrTruncated, st.Size)
	}
	size := int(min(st.Size, maxFileSize))
	data, err := unix.Mmap(int(fd.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	if rf.data != nil {
		unix.Munmap(rf.data)
	}
	rf.data = data
	return nil
}

// parseLocked parses the entries in [rf.parsed, used).
func (r *Reader) parseLocked(rf *readerFile, used int) error {
	if !rf.layoutKnown {
		l, err := detectLayout(rf.data, rf.parsed, used, Current)
		if err != nil {
			return err
		}
		rf.layout, rf.layoutKnown = l, true
	}
	n := len(rf.entries)
	err := walk(rf.data, rf.parsed, used, rf.layout, func(e rawEntry) error {
		ik := r.keys[string(e.key)]
		if ik == nil {
			k, err := DecodeKey(e.key)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			r.stats.DecodedKeys++
			ik = &internedKey{raw: string(e.key), key: &k}
			r.keys[ik.raw] = ik
		}
		ik.refs++
		rf.entries = append(rf.entries, readerEntry{ik, ik.key, e.valueOff})
		rf.samples = append(rf.samples, Sample{Key: ik.key})
		return nil
	})
	r.stats.ParsedEntries += uint64(len(rf.entries) - n)
	if err != nil {
		return err // the caller forgets the file, releasing what was interned
	}
	rf.parsed = used
	return nil
}

func (r *Reader) releaseEntriesLocked(rf *readerFile) {
	for _, e := range rf.entries {
		e.key.refs--
		if e.key.refs == 0 {
			delete(r.keys, e.key.raw)
		}
	}
	rf.entries, rf.samples = nil, nil
	rf.parsed = headerSize
	rf.layoutKnown = false
}

func (r *Reader) forgetLocked(path string) {
	rf := r.files[path]
	if rf == nil {
		return
	}
	r.releaseEntriesLocked(rf)
	if rf.data != nil {
		unix.Munmap(rf.data)
	}
	delete(r.files, path)
}

// Stats returns counters of the Reader's work.
func (r *Reader) Stats() ReaderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Files, s.Keys = len(r.files), len(r.keys)
	return s
}

// Close unmaps every cached file. The Reader can be used again afterwards
// (it starts from scratch); calling Close twice is harmless.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for path := range r.files {
		r.forgetLocked(path)
	}
	clear(r.out[:cap(r.out)])
	r.out = nil
	return nil
}

// ReadFile reads one file without caching or mapping it (tests, tools). The
// name only fills in Type, Mode and ID; a file whose name does not parse is
// still read. It returns the errors that ScanDir reports as skip reasons.
func ReadFile(path string) (FileSamples, error) {
	fs := FileSamples{Path: path}
	fs.Type, fs.Mode, fs.ID, _ = ParseFileName(filepath.Base(path))
	data, err := os.ReadFile(path)
	if err != nil {
		return fs, fmt.Errorf("mmapstore: read %s: %w", path, err)
	}
	samples, layout, err := parseBytes(data)
	if err != nil {
		return fs, fmt.Errorf("mmapstore: read %s: %w", path, err)
	}
	fs.Layout, fs.Samples = layout, samples
	return fs, nil
}

// parseBytes parses a whole file image.
func parseBytes(data []byte) ([]Sample, Layout, error) {
	used, err := checkHeader(data)
	if err != nil {
		return nil, Current, err
	}
	layout, err := detectLayout(data, headerSize, used, Current)
	if err != nil {
		return nil, layout, err
	}
	var samples []Sample
	keys := make(map[string]*Key)
	err = walk(data, headerSize, used, layout, func(e rawEntry) error {
		k := keys[string(e.key)]
		if k == nil {
			d, err := DecodeKey(e.key)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			k = &d
			keys[string(e.key)] = k
		}
		s := Sample{Key: k, Value: math.Float64frombits(binary.LittleEndian.Uint64(data[e.valueOff:]))}
		if layout == Current {
			s.Timestamp = math.Float64frombits(binary.LittleEndian.Uint64(data[e.valueOff+8:]))
		}
		samples = append(samples, s)
		return nil
	})
	return samples, layout, err
}
