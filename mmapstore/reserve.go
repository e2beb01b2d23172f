package mmapstore

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// reserve allocates file blocks for [off, off+n) and extends the file to
// cover it, without changing any byte the file already holds. Unlike
// ftruncate, which makes a sparse file whose pages are only allocated when
// first touched through the mapping (and a full tmpfs turns that touch into
// SIGBUS), this fails up front with ENOSPC.
//
// fallocate(2) with mode 0 does exactly that. A filesystem without it
// (EOPNOTSUPP: ramfs, NFSv3, ext4 without extents, many FUSE mounts) gets
// the same by writing: zeros past the end of the file, where nothing is
// yet, and inside the file only into its holes, writing back what they read
// (zeros). Bytes already on disk are never written: a file continued by a
// restarted worker keeps its predecessor's counts.
func (f *File) reserve(fd *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		err := f.fallocate(int(fd.Fd()), 0, off, n)
		if err == unix.EINTR {
			continue
		}
		if err != unix.EOPNOTSUPP {
			return err
		}
		break
	}
	return reserveByWriting(fd, off, off+n)
}

// reserveByWriting is reserve's fallback for [off, end).
func reserveByWriting(fd *os.File, off, end int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return err
	}
	eof := st.Size
	if off < eof {
		if err := fillHoles(fd, off, min(end, eof)); err != nil {
			return err
		}
	}
	if end <= eof {
		return nil
	}
	zeros := make([]byte, min(end-max(off, eof), 64<<10))
	for pos := max(off, eof); pos < end; {
		w, err := fd.WriteAt(zeros[:min(end-pos, int64(len(zeros)))], pos)
		if err != nil {
			return err
		}
		pos += int64(w)
	}
	return nil
}

// fillHoles gives blocks to the holes of [off, end), which lies inside the
// file, found with SEEK_HOLE and SEEK_DATA. It writes back what it reads
// there (zeros), so that a byte it did not see as a hole is never written.
// A filesystem that does not tell holes (lseek's generic answer: all data)
// is left as it is: there, pages are given when touched (ramfs) or the
// space is not checked when a page is dirtied (NFS), so there is nothing a
// write could reserve. A filesystem that refuses SEEK_HOLE (EINVAL, kernels
// before 3.1) gets the whole range written back.
func fillHoles(fd *os.File, off, end int64) error {
	raw := int(fd.Fd())
	var buf []byte
	for pos := off; pos < end; {
		hole, err := unix.Seek(raw, pos, unix.SEEK_HOLE)
		switch {
		case errors.Is(err, unix.ENXIO): // pos is past the end: the file shrank
			return nil
		case errors.Is(err, unix.EINVAL):
			hole = pos
		case err != nil:
			return err
		}
		if hole >= end {
			return nil
		}
		data, err := unix.Seek(raw, hole, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO): // a hole up to the end of the file
			data = end
		case errors.Is(err, unix.EINVAL):
			data = end
		case err != nil:
			return err
		}
		stop := min(data, end)
		if buf == nil {
			buf = make([]byte, 64<<10)
		}
		for p := hole; p < stop; {
			chunk := buf[:min(stop-p, int64(len(buf)))]
			r, err := fd.ReadAt(chunk, p)
			if r == 0 && errors.Is(err, io.EOF) { // shrank meanwhile
				return nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			w, err := fd.WriteAt(chunk[:r], p)
			if err != nil {
				return err
			}
			p += int64(w)
		}
		pos = stop
	}
	return nil
}
