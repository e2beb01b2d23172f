package mmapstore

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// ReaderOptions limits what a Reader takes from its directory, so that a
// writer that is broken, or hostile, costs a scan a bounded amount of memory
// and work. A file a limit keeps out is skipped (see SkippedFile), like a
// corrupt one: never an error of the scan. The zero value gives the defaults
// below; a negative number turns a limit off.
type ReaderOptions struct {
	// MaxFiles is the most metric files (names that ParseFileName accepts)
	// one scan looks at, in name order; the others are skipped with
	// ErrTooManyFiles. Zero: DefaultMaxFiles.
	MaxFiles int
	// MaxFileBytes is the most bytes a file may have in use (its header's
	// used field); a file with more is skipped with ErrFileTooLarge before it
	// is mapped. Zero: DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxSeries is the most entries one scan takes, summed over its files (a
	// series that N files hold counts N times). A file whose entries would
	// take the sum past it is skipped whole, with ErrTooManySeries, before its
	// keys are decoded; later files that fit are still read. Zero:
	// DefaultMaxSeries.
	MaxSeries int
	// Owners, if not nil, are the user ids whose files are read; a file owned
	// by anybody else is skipped with ErrForeignOwner. nil: any owner.
	Owners []int
}

// The defaults of ReaderOptions. They are far above what a real deployment
// writes (a herd worker's file of a few thousand series is well under 1 MiB),
// so that they only ever stop a runaway or hostile writer: a file that a
// limit keeps out is missing from the scrape, and its counts with it.
const (
	DefaultMaxFiles     = 10000
	DefaultMaxFileBytes = 256 << 20
	DefaultMaxSeries    = 2000000
)

// Reasons a scan skips a file for its limits or its owner, beside the format
// errors (ErrEmptyFile, ErrTruncated, ErrCorrupt, ErrUnknownName).
var (
	ErrTooManyFiles  = errors.New("mmapstore: more metric files than the reader's limit")
	ErrFileTooLarge  = errors.New("mmapstore: file larger than the reader's limit")
	ErrTooManySeries = errors.New("mmapstore: more series than the reader's limit")
	ErrForeignOwner  = errors.New("mmapstore: file owned by a user the reader does not trust")
	// ErrSparse is a file whose bytes in use are not all on disk (holes, as
	// truncate makes them): a writer writes every byte it uses, and reading
	// holes would make the filesystem allocate them (on a tmpfs, unswappable
	// memory) for nothing.
	ErrSparse = errors.New("mmapstore: sparse file")
)

// limits is ReaderOptions with the defaults applied; 0 means no limit.
type limits struct {
	maxFiles  int
	maxBytes  int64
	maxSeries int
	owners    []int // nil: any
}

func (o ReaderOptions) limits() limits {
	pick := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return limits{
		maxFiles:  int(pick(int64(o.MaxFiles), DefaultMaxFiles)),
		maxBytes:  pick(o.MaxFileBytes, DefaultMaxFileBytes),
		maxSeries: int(pick(int64(o.MaxSeries), DefaultMaxSeries)),
		owners:    slices.Clone(o.Owners),
	}
}

// checkOwner applies the Owners option to a file's stat.
func (l *limits) checkOwner(st *unix.Stat_t) error {
	if l.owners == nil || slices.Contains(l.owners, int(st.Uid)) {
		return nil
	}
	return fmt.Errorf("%w: uid %d", ErrForeignOwner, st.Uid)
}

// checkSparse compares the bytes in use of the open file fd (stat st) with
// the blocks it has on disk. Fewer blocks than bytes in use means holes,
// unless the filesystem compresses: then SEEK_HOLE settles it (a filesystem
// that cannot tell holes is taken at its blocks).
func checkSparse(fd int, st *unix.Stat_t, used int) error {
	allocated := st.Blocks * 512
	if allocated >= int64(used) {
		return nil
	}
	hole, err := unix.Seek(fd, 0, unix.SEEK_HOLE)
	if err == nil && hole >= int64(used) {
		return nil // no hole in the bytes in use: a compressed file
	}
	return fmt.Errorf("%w: %d bytes in use, %d allocated on disk", ErrSparse, used, allocated)
}

// Kind names the kind of the skip, for a metric label or a log summary:
// "empty", "truncated", "corrupt", "unknown-name", "sparse",
// "foreign-owner", "too-many-files", "file-too-large", "too-many-series", or
// "error" for anything else (an I/O error, a file that cannot be mapped).
func (s SkippedFile) Kind() string {
	for _, k := range skipKinds {
		if errors.Is(s.Reason, k.err) {
			return k.name
		}
	}
	return "error"
}

// SkipKinds lists every value of SkippedFile.Kind, in a fixed order.
func SkipKinds() []string {
	out := make([]string, 0, len(skipKinds)+1)
	for _, k := range skipKinds {
		out = append(out, k.name)
	}
	return append(out, "error")
}

var skipKinds = [...]struct {
	err  error
	name string
}{
	{ErrEmptyFile, "empty"},
	{ErrTruncated, "truncated"},
	{ErrCorrupt, "corrupt"},
	{ErrUnknownName, "unknown-name"},
	{ErrSparse, "sparse"},
	{ErrForeignOwner, "foreign-owner"},
	{ErrTooManyFiles, "too-many-files"},
	{ErrFileTooLarge, "file-too-large"},
	{ErrTooManySeries, "too-many-series"},
}
