// Package mmapstore reads and writes the memory-mapped metric files of Python
// prometheus_client's multiprocess mode, byte for byte: herd's master can merge
// files that Python wrote, and Python's collector can read herd's.
//
// It knows bytes, keys and floats; it knows nothing of HTTP or of what the
// values mean (merging counters, gauge modes and histograms is package
// metrics' job). It is Linux only (fallocate, renameat2, mmap semantics).
//
// # The format
//
// A file holds one process's series of one metric type, named
// counter_<id>.db, histogram_<id>.db, summary_<id>.db or gauge_<mode>_<id>.db
// (see ParseFileName). Native (little-endian) byte order:
//
//	offset 0  int32 used   bytes in use from the start of the file, header included
//	offset 4  4 zero bytes
//	offset 8  entries, back to back, up to used:
//	          int32 klen, klen key bytes, 1..8 spaces so the value is 8-byte aligned,
//	          float64 value, and in the Current layout a float64 timestamp
//
// The key is Python's json.dumps([family, sample, labels, help],
// sort_keys=True), which EncodeKey reproduces exactly (Go's encoding/json
// differs in separators, escaping and non-ASCII). Layout Current (16 value
// bytes) is what client_python 0.18 and later write, Legacy (8) what 0.4 to
// 0.17 write, among them Debian 12's package. A file does not say which: the
// readers keep the layout whose walk of the entries lands exactly on used, with
// every key framed as a JSON list, padded with spaces and decoding (Current
// when both do). They parse a file once: in the layout that its first entries
// frame in (Current if both), and only if that fails in the other one; a file
// that parses in neither is skipped as corrupt, never misread. A writer that
// continues an existing file keeps that file's layout.
//
// # Writing: File and Cell
//
// Open creates a file atomically (header written and space reserved under a
// temporary name in the same directory, then renamed into place), or continues
// an existing valid one, so that a restarted worker goes on from its
// predecessor's counts. File.Cell appends an entry for a new key: the entry's
// bytes first, then the new used, so a reader that sees used sees the whole
// entry; readers take no lock.
//
// A Cell is the handle of one value. Add, Set and Load are one atomic pointer
// load plus an atomic load, store or compare-and-swap loop on the value's
// float64 bits inside the shared mapping: no lock, no allocation, no system
// call. Concurrent adds from goroutines and from other processes that map the
// same file are all counted. Everything in this package is safe for
// concurrent use.
//
// A file has one writer: Open takes an exclusive flock(2) on it, held until
// Close or the death of the process, so that a second File on the same path
// (two Registries given one directory and id, in one process or two) fails
// with ErrLocked instead of appending over the first one's entries. herd's
// rolling restarts never meet it: a successor starts in the other lane, with
// other files. Readers take no lock and never wait.
//
// # The tmpfs trap, and why Cells never move
//
// Metric files usually live on a tmpfs (/dev/shm). Python grows a file with
// truncate, which makes it sparse: a page gets memory only when it is first
// written through the mapping, and on a full tmpfs that write is a SIGBUS that
// kills the process, on the request path, long after the series was created.
// mmapstore reserves every byte with fallocate(2) before it maps or uses it
// (and fills the holes of a sparse file it continues), so a full filesystem
// is an error from Open or File.Cell, when a series is created, and never a
// crash. The worker keeps serving its existing series. On a filesystem
// without fallocate (ramfs, NFSv3, ext4 without extents, many FUSE mounts)
// the store writes instead: zeros past the end of the file, and into the
// holes the filesystem reports (SEEK_HOLE) what they hold; it never writes
// over a byte the file already has, so a continued file keeps its counts.
//
// Growing a file must not invalidate Cells that live handles point at, and
// remapping would. So Open maps Options.MaxSize bytes (1 GiB by default) once,
// MAP_SHARED, far beyond the file's end: mapping past EOF is legal, only
// touching it faults, and the store never touches more than it has reserved.
// Growth is then just fallocate inside the existing mapping: the address
// space is reserved, memory is only what the file holds.
//
// # Deleted files (the third trap)
//
// A test fixture that deletes the metric files under a live writer leaves it
// writing into an unlinked inode: in client_python every later increment is
// silently lost. File.Check notices a deleted or replaced file (fstat's link
// count, or the inode at the path differing from the open one) and recreates
// it, atomically, with the current entries and values, then maps the new file
// over the old one's addresses (MAP_FIXED): Cells, and goroutines inside a
// Cell method at that moment, write into the new file without knowing it, and
// adds that reached the old file after the copy are carried over: nothing is
// lost, and nothing of the deleted file is kept, however often it is deleted.
// Check is cheap (two stats); package metrics calls it before reading its own
// directory.
//
// # Leftovers
//
// A writer killed while it makes a file leaves its temporary file
// (".counter_0a.db.tmp-<n>"), and Open leaves a corrupt file it moved aside
// ("counter_0a.db.corrupt-<ns>"). Readers ignore both (their names do not end
// in ".db"); RemoveLeftovers removes them, for every file id before the
// writers start, or for one id once its writer has exited.
//
// # Reading: Reader
//
// The master reads the directory on every scrape. A Reader maps the bytes in
// use of each file read-only (never its whole size), remembers how far it parsed it and the keys it found, and on
// later scans parses only entries appended since; identical key bytes in many
// files (every worker has the same series) are decoded once and shared (an
// entry's key is first compared with the key at the same position of the file
// parsed before, which every worker of one app usually has), and the keys
// decoded share their family, help and label name strings. A
// steady-state scan is a stat per file and an atomic load per value, written
// into Samples slices that the Reader reuses from scan to scan (they are valid
// until the next scan), so it allocates nothing per entry. ScanDirFunc hands
// the files over one by one in a single buffer that stays in the CPU cache
// while the caller consumes it, and FileSamples.Seq tells a caller that a
// file's entries are the ones it saw before (entries are only appended), so
// that it can keep what it derived from each position. Files
// that are zero-length, truncated, corrupt, foreign or oddly named are
// skipped and reported, never an error (one such file fails the whole scrape
// in client_python). A file replaced under the same name (new inode) is
// parsed from the start; one that shrinks is remapped or skipped, and a
// shrink that races with a read is caught as a memory fault
// (debug.SetPanicOnFault) instead of killing the master. ReadFile is the
// uncached, one-shot form.
//
// A Reader does not trust its directory: a file whose bytes in use are not
// all on disk (a sparse file: reading its holes would make a tmpfs allocate
// them) is skipped, and so are, with ReaderOptions, files of users it does
// not trust and whatever passes its limits on files per scan, bytes per file
// and series per scan. Each skip has a reason (SkippedFile.Kind), so that a
// caller can count and report it.
package mmapstore
