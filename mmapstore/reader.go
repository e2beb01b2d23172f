package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
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
	// Seq identifies the list of entries a Reader knows for the file: a Reader's scans
	// that give one Path the same Seq give the same Key at every position both have
	// Samples for (entries are only ever appended). It changes when the file is replaced
	// or rewritten, so that a consumer may cache what it derived from each position and
	// only look at new ones. Never 0 from a Reader; ReadFile leaves it 0 (unknown).
	Seq uint64
}

// SkippedFile is a file a scan passed over, and why. Reason wraps one of
// ErrEmptyFile, ErrTruncated, ErrCorrupt, ErrUnknownName, ErrSparse,
// ErrForeignOwner, ErrTooManyFiles, ErrFileTooLarge, ErrTooManySeries or an
// I/O error; Kind names which.
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
// A Reader maps only the bytes in use of a file, and skips files that are
// sparse there, owned by a user it does not trust, or past its limits (see
// ReaderOptions).
//
// A Reader is safe for concurrent use; scans are serialised. Close releases
// its mappings.
type Reader struct {
	lim limits // fixed at NewReaderWith

	mu      sync.Mutex // guards the fields below; held for a whole scan
	files   map[string]*readerFile
	keys    map[string]*internedKey
	stats   ReaderStats
	gen     uint64        // scans so far; a file seen in scan gen has seen == gen
	seq     uint64        // the last readerFile.seq handed out
	out     []FileSamples // ScanDir's result, reused
	scratch []Sample      // ScanDirFunc's samples, reused for every file
	skipped []SkippedFile // the last scan's, for Skipped
	dec     keyDecoder    // its buffers serve every key decoded
	slab    []internedKey // where new interned keys are allocated, a batch at a time
	// hint is the keys of the file parsed last, by position: the files of one
	// directory usually hold the same keys in the same order (the workers of
	// one app), so the key at an entry's position there is likely the entry's,
	// and comparing it is cheaper than a map lookup. An entry of hint may be
	// released since (refs == 0, no longer in keys); such an entry is not used.
	hint []*internedKey
}

type internedKey struct {
	raw  string // the key bytes, its map key
	key  Key    // decoded from raw; its strings are substrings of raw
	refs int    // entries (over all cached files) that use it
}

// readerFile is the cached state of one file.
type readerFile struct {
	dev, ino    uint64
	data        []byte // read-only mapping of the bytes in use at mapping time, page-rounded
	size        int64  // the file's size at mapping time
	layout      Layout
	layoutKnown bool
	parsed      int    // offset up to which entries are parsed
	seq         uint64 // FileSamples.Seq: changes whenever the entries start over
	// The entries, in file order, as parallel arrays: a scan reads offs and iks
	// (12 bytes an entry; an entry's key is &iks[i].key, found without a load).
	offs    []uint32       // value offsets
	iks     []*internedKey // the entries' keys, and their reference counts
	samples []Sample       // entries' samples for ScanDir, refilled in place by every scan
	seen    uint64         // the Reader's gen of the last scan that listed the file
}

// NewReader returns an empty Reader with the default limits.
func NewReader() *Reader { return NewReaderWith(ReaderOptions{}) }

// NewReaderWith returns an empty Reader with the limits of opts.
func NewReaderWith(opts ReaderOptions) *Reader {
	return &Reader{lim: opts.limits(), files: make(map[string]*readerFile), keys: make(map[string]*internedKey),
		dec: keyDecoder{intern: true}}
}

// Skipped returns the files the last scan skipped (a copy).
func (r *Reader) Skipped() []SkippedFile {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.skipped)
}

// ScanDir reads every *.db file of dir (sorted by name). Files that are not
// usable metric files (zero length, truncated, corrupt, foreign, unknown name
// prefix) are skipped and listed in skipped, never an error: one bad file must
// not blank the whole scrape, as it does in client_python. Files that
// disappeared are forgotten. err is only for an unreadable dir.
//
// files and every Samples slice in it are the Reader's and are reused: they
// are valid until the next ScanDir, ScanDirFunc or Close. A steady-state scan
// (no new entries) allocates only for the directory listing.
func (r *Reader) ScanDir(dir string) (files []FileSamples, skipped []SkippedFile, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files = r.out[:0]
	skipped, err = r.scanLocked(dir, true, func(fs *FileSamples) { files = append(files, *fs) })
	if err != nil {
		return nil, nil, err
	}
	clear(files[len(files):cap(files)]) // drop references to forgotten files' samples
	r.out = files
	return files, skipped, nil
}

// ScanDirFunc is ScanDir that hands each usable file to fn as soon as it is
// read, in name order, instead of returning them all: fs and its Samples are
// valid only during the call (one buffer serves every file, so it stays in
// the CPU cache while fn consumes it). fn must not call the Reader.
func (r *Reader) ScanDirFunc(dir string, fn func(fs *FileSamples)) (skipped []SkippedFile, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scanLocked(dir, false, fn)
}

// scanLocked reads dir, calling fn for every usable file. With keep, each
// file's samples go to its own buffer (ScanDir), else to the shared scratch.
func (r *Reader) scanLocked(dir string, keep bool, fn func(fs *FileSamples)) (skipped []SkippedFile, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mmapstore: scan %s: %w", dir, err)
	}
	if r.files == nil {
		r.files = make(map[string]*readerFile)
		r.keys = make(map[string]*internedKey)
	}
	// A file truncated under our mapping makes the next load fault; turn that
	// into a recoverable panic (see guardFault) instead of killing the master.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	r.gen++
	clean := filepath.Clean(dir)
	files, series := 0, 0 // looked at, and entries taken, for the limits
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".db") {
			continue
		}
		path := filepath.Join(clean, name)
		typ, mode, id, ok := ParseFileName(name)
		if !ok {
			r.forgetLocked(path)
			skipped = append(skipped, SkippedFile{Path: path, Reason: fmt.Errorf("%w: %s", ErrUnknownName, name)})
			continue
		}
		if r.lim.maxFiles > 0 && files >= r.lim.maxFiles {
			r.forgetLocked(path)
			skipped = append(skipped, SkippedFile{Path: path, Reason: ErrTooManyFiles})
			continue
		}
		files++
		fs := FileSamples{Path: path, Type: typ, Mode: mode, ID: id}
		budget := -1 // entries this file may have; -1: no limit
		if r.lim.maxSeries > 0 {
			budget = r.lim.maxSeries - series
		}
		gone, err := r.scanFileLocked(path, &fs, keep, budget)
		switch {
		case gone:
			r.forgetLocked(path)
		case err != nil:
			r.forgetLocked(path)
			skipped = append(skipped, SkippedFile{Path: path, Reason: err})
		default:
			series += len(fs.Samples)
			fn(&fs)
		}
	}
	for path, rf := range r.files {
		if rf.seen != r.gen && filepath.Dir(path) == clean {
			r.forgetLocked(path)
		}
	}
	r.skipped = skipped
	return skipped, nil
}

// scanFileLocked brings the cached state of path up to date and fills
// fs.Samples. gone reports a file that vanished since the directory listing.
// budget is how many entries the file may have (-1: any).
func (r *Reader) scanFileLocked(path string, fs *FileSamples, keep bool, budget int) (gone bool, err error) {
	var st unix.Stat_t
	// Lstat: a symbolic link in the directory is a foreign file, never
	// followed (it could count another directory's file twice).
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	if err := r.lim.checkOwner(&st); err != nil {
		return false, err
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
		r.seq++
		rf = &readerFile{dev: uint64(st.Dev), ino: uint64(st.Ino), parsed: headerSize, seq: r.seq}
		r.files[path] = rf
	}
	rf.seen = r.gen
	if rf.data == nil || st.Size < rf.size {
		// New, or shrunk: a load from a lost page would fault.
		if err := r.remapLocked(path, rf); err != nil {
			return errors.Is(err, unix.ENOENT), err
		}
	}
	return false, guardFault(func() error { return r.readLocked(path, rf, fs, keep, budget) })
}

// readLocked parses what was appended to rf and loads every value into
// rf.samples (keep) or the Reader's scratch buffer.
func (r *Reader) readLocked(path string, rf *readerFile, fs *FileSamples, keep bool, budget int) error {
	if readUsed(rf.data) > len(rf.data) {
		// The writer appended past what we mapped: map the bytes in use again.
		if err := r.remapLocked(path, rf); err != nil {
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
		if err := r.parseLocked(rf, used, budget); err != nil {
			return err
		}
	} else if budget >= 0 && len(rf.offs) > budget {
		return fmt.Errorf("%w: %d entries, %d left of the scan's %d", ErrTooManySeries, len(rf.offs), budget, r.lim.maxSeries)
	}
	n := len(rf.offs)
	buf := &r.scratch
	if keep {
		buf = &rf.samples
	}
	if len(*buf) < n {
		*buf = append(*buf, make([]Sample, n-len(*buf))...)
	}
	ss := (*buf)[:n]
	fs.Layout, fs.Samples, fs.Seq = rf.layout, ss, rf.seq
	// Only values change between scans. Keys are stored only where they
	// differ (new entries; in the scratch buffer, a file whose entries are
	// not in the previous file's order), so a steady scan writes no pointers.
	iks, data := rf.iks[:n], rf.data
	if rf.layout == Current {
		for i, off := range rf.offs {
			s := &ss[i]
			if k := &iks[i].key; s.Key != k {
				s.Key = k
			}
			p := word(data, int(off))
			s.Value = math.Float64frombits(atomic.LoadUint64(p))
			s.Timestamp = math.Float64frombits(atomic.LoadUint64(tsWord(p)))
		}
		return nil
	}
	for i, off := range rf.offs {
		s := &ss[i]
		if k := &iks[i].key; s.Key != k {
			s.Key = k
		}
		s.Value = math.Float64frombits(atomic.LoadUint64(word(data, int(off))))
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

// remapLocked maps the bytes in use of the file at path, after checking
// them against the limits and the blocks on disk. The identity is checked on
// the opened descriptor, so a replacement racing with the stat starts over.
// Only the bytes in use are mapped (and read ahead): a file's size says
// nothing of what it holds, and a sparse 2 GiB file must not cost 2 GiB.
func (r *Reader) remapLocked(path string, rf *readerFile) error {
	fd, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	if err != nil {
		return err
	}
	defer fd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	if uint64(st.Dev) != rf.dev || uint64(st.Ino) != rf.ino {
		return fmt.Errorf("%w: replaced while being read", ErrTruncated)
	}
	if err := r.lim.checkOwner(&st); err != nil {
		return err
	}
	var hdr [headerSize]byte
	if n, err := fd.ReadAt(hdr[:], 0); n < headerSize {
		switch {
		case err != nil && !errors.Is(err, io.EOF):
			return err
		case n == 0:
			return ErrEmptyFile
		}
		return fmt.Errorf("%w: %d bytes, shorter than the header", ErrTruncated, n)
	}
	used := int(int32(binary.LittleEndian.Uint32(hdr[:])))
	if used == 0 {
		used = headerSize // Python's 0: nothing written yet
	}
	switch {
	case used < headerSize:
		return fmt.Errorf("%w: used = %d", ErrCorrupt, used)
	case int64(used) > st.Size:
		return fmt.Errorf("%w: used = %d but the file has %d bytes", ErrTruncated, used, st.Size)
	case r.lim.maxBytes > 0 && int64(used) > r.lim.maxBytes:
		return fmt.Errorf("%w: %d bytes in use, the limit is %d", ErrFileTooLarge, used, r.lim.maxBytes)
	}
	if err := checkSparse(int(fd.Fd()), &st, used); err != nil {
		return err
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, roundPage(used), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	if rf.data != nil {
		unix.Munmap(rf.data)
	}
	rf.data, rf.size = data, st.Size
	return nil
}

// parseLocked parses the entries in [rf.parsed, used). With budget >= 0, the
// file may have at most budget entries in all: the new ones are counted
// first (a walk of their framing), and none is taken if there are too many.
//
// The first parse of a file decides its layout as detectLayout does, but in
// one pass in the usual case: the entries are parsed in the layout that
// guessLayout puts first, and only if that fails in the other one (when its
// first entries framed too). A file that parses in neither is corrupt.
func (r *Reader) parseLocked(rf *readerFile, used, budget int) error {
	n := len(rf.offs)
	// Count only when the budget could be short: an entry takes at least
	// minEntrySize bytes, which bounds how many the new bytes can hold.
	if budget >= 0 && n+(used-rf.parsed)/minEntrySize > budget {
		if !rf.layoutKnown { // the count needs the layout: decide it the long way
			l, err := detectLayout(rf.data, rf.parsed, used, Current)
			if err != nil {
				return err
			}
			rf.layout, rf.layoutKnown = l, true
		}
		added := 0
		if err := walk(rf.data, rf.parsed, used, rf.layout, func(rawEntry) error { added++; return nil }); err != nil {
			return err
		}
		if n+added > budget {
			return fmt.Errorf("%w: %d entries, %d left of the scan's %d", ErrTooManySeries, n+added, budget, r.lim.maxSeries)
		}
	}
	if rf.layoutKnown {
		return r.parseEntriesLocked(rf, used, rf.layout)
	}
	guess, alt, err := guessLayout(rf.data, rf.parsed, used)
	if err != nil {
		return err
	}
	if err = r.parseEntriesLocked(rf, used, guess); err == nil {
		rf.layout, rf.layoutKnown = guess, true
		return nil
	}
	if !alt {
		return err // the caller forgets the file, releasing what was interned
	}
	other := Legacy
	if guess == Legacy {
		other = Current
	}
	r.releaseEntriesLocked(rf)
	if err := r.parseEntriesLocked(rf, used, other); err != nil {
		return err
	}
	rf.layout, rf.layoutKnown = other, true
	return nil
}

// parseEntriesLocked parses the entries in [rf.parsed, used) in layout l and
// appends them to rf. On error, what it appended is still in rf (and
// interned): the caller releases it.
func (r *Reader) parseEntriesLocked(rf *readerFile, used int, l Layout) error {
	data, pos, vb := rf.data, rf.parsed, l.valueBytes()
	n := len(rf.offs)
	if pos < used {
		// Size the arrays for the whole at once, estimating the number of entries
		// from the first one's size (the entries of a file are much alike); append
		// grows them if that falls short.
		if _, _, end, ok := frame(data, pos, used, vb); ok {
			if want := n + (used-pos)/(end-pos)*9/8 + 1; cap(rf.offs) < want {
				rf.offs = slices.Grow(rf.offs, want-n)
				rf.iks = slices.Grow(rf.iks, want-n)
			}
		}
	}
	hint := r.hint
	var err error
	for i := n; pos < used; i++ {
		klen, valueOff, end, ok := frame(data, pos, used, vb)
		if !ok {
			err = frameError(data, pos, used, vb)
			break
		}
		key := data[pos+4 : pos+4+klen]
		var ik *internedKey
		if i < len(hint) && hint[i].refs > 0 && hint[i].raw == string(key) {
			ik = hint[i]
		} else if ik = r.keys[string(key)]; ik == nil {
			if ik, err = r.internLocked(key); err != nil {
				break
			}
		}
		ik.refs++
		rf.offs = append(rf.offs, uint32(valueOff))
		rf.iks = append(rf.iks, ik)
		pos = end
	}
	r.stats.ParsedEntries += uint64(len(rf.offs) - n)
	if err != nil {
		r.hint = nil // it may hold the entries about to be released
		return err
	}
	rf.parsed = used
	r.hint = rf.iks
	return nil
}

// internLocked decodes a key not interned yet and interns it.
func (r *Reader) internLocked(key []byte) (*internedKey, error) {
	raw := string(key)
	k, err := r.dec.decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(r.slab) == 0 {
		// A first scan interns thousands of keys: one allocation for many.
		r.slab = make([]internedKey, 128)
	}
	ik := &r.slab[0]
	r.slab = r.slab[1:]
	ik.raw, ik.key = raw, k
	r.stats.DecodedKeys++
	r.keys[ik.raw] = ik
	return ik, nil
}

func (r *Reader) releaseEntriesLocked(rf *readerFile) {
	for _, ik := range rf.iks {
		ik.refs--
		if ik.refs == 0 {
			delete(r.keys, ik.raw)
			ik.raw, ik.key = "", Key{} // its slab may live on: keep nothing alive
		}
	}
	rf.offs, rf.iks, rf.samples = nil, nil, nil
	rf.parsed = headerSize
	rf.layoutKnown = false
	r.seq++
	rf.seq = r.seq
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
	r.out, r.scratch, r.hint, r.slab = nil, nil, nil, nil
	r.dec = keyDecoder{intern: r.dec.intern}
	return nil
}
