package mmapstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Check notices that the file was deleted, or replaced by another file, under
// the live mapping (the seed article's third trap: writes would go on into an
// unlinked inode and be lost). If so it recreates the file at its path,
// atomically, with the current entries and values, and maps the new file at
// the very addresses of the old one, so that every Cell, and every goroutine
// that is inside a Cell method at that moment, writes into the new file; adds
// that reached the old file after its values were copied are carried over. It
// returns whether it recreated the file. Nothing of the old file is kept: a
// tool that deletes the file again and again costs the writer no memory.
// Check costs two stat calls; call it before reading the directory (a scrape)
// or periodically. Safe for concurrent use with everything.
func (f *File) Check() (recreated bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, ErrClosed
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.fd.Fd()), &st); err != nil {
		return false, fmt.Errorf("mmapstore: check %s: %w", f.path, err)
	}
	gone := st.Nlink == 0
	if !gone {
		err := unix.Lstat(f.path, &st)
		switch {
		case errors.Is(err, unix.ENOENT):
			gone = true
		case err != nil:
			return false, fmt.Errorf("mmapstore: check %s: %w", f.path, err)
		default:
			gone = uint64(st.Dev) != f.dev || uint64(st.Ino) != f.ino
		}
	}
	if !gone {
		return false, nil
	}
	if f.lockedByOther() {
		// Another File wrote the file now at the path: replacing it would lose its
		// entries. Two writers for one path is the caller's bug; say so.
		return false, fmt.Errorf("mmapstore: check %s: replaced by another writer's file: %w", f.path, ErrLocked)
	}
	if err := f.recreateLocked(); err != nil {
		return false, fmt.Errorf("mmapstore: recreate %s: %w", f.path, err)
	}
	return true, nil
}

// recreateLocked writes the current entries and values to a new file at
// f.path and swaps it in under the File's mapping.
//
// How many old mappings it keeps: none. A Cell's pointer, once loaded by a
// goroutine in Add or Set, may be used after any amount of time (the
// goroutine can be descheduled between the load and the store), so no old
// mapping could ever be unmapped safely, and keeping them all would let a
// tool that keeps deleting files pin one unlinked inode per deletion. Instead
// the new file is mapped with MAP_FIXED over the old mapping's address range:
// the kernel replaces the pages in one step (a concurrent access either
// completes on the old page or faults and waits for the new one), the address
// stays valid forever, and a stale pointer is simply a pointer into the new
// file. Cells keep their pointers.
//
// The only adds that need help are those that land on the old pages between
// the copy of the values and the swap: the old file's descriptor stays open
// across the swap, and its final values, read back through it, tell exactly
// what was added after the copy; that difference is added to the new file.
// One process writes a file (the flock), so nothing writes the old inode once
// this process's mapping is gone.
func (f *File) recreateLocked() error {
	copied := make([]uint64, 2*len(f.cells)) // value and timestamp words as copied
	oldData := f.data
	fd, tmpMap, err := f.makeFile(f.size, func(data []byte) {
		// Keys and padding never change once written; values are copied one
		// by one with atomic loads, remembering what was copied.
		copy(data[:f.used], oldData[:f.used])
		for i, c := range f.cells {
			copied[2*i] = atomic.LoadUint64(word(oldData, c.off))
			atomic.StoreUint64(word(data, c.off), copied[2*i])
			if c.ts {
				copied[2*i+1] = atomic.LoadUint64(word(oldData, c.off+8))
				atomic.StoreUint64(word(data, c.off+8), copied[2*i+1])
			}
		}
		atomic.StoreUint32(usedWord(data), uint32(f.used))
	}, true)
	if err != nil {
		return err
	}
	defer unix.Munmap(tmpMap)
	if err := mapAt(oldData, fd); err != nil {
		// Where the kernel unmaps before it maps, a failed MAP_FIXED leaves a
		// hole: put the old file back there (a no-op if it is still mapped)
		// and keep writing to it; the next Check tries again. The new file,
		// already in place, is replaced then.
		fd.Close()
		if err2 := mapAt(oldData, f.fd); err2 != nil {
			panic(fmt.Sprintf("mmapstore: %s: the mapping of the file is lost (%v), and writes to it would fault", f.path, err2))
		}
		return fmt.Errorf("map the new file over the old one: %w", err)
	}
	old := f.fd
	f.fd = fd
	defer old.Close()
	// Carry what reached the old file after the copy. Its pages are no
	// longer mapped here, so these reads see its final values.
	final := make([]byte, f.used)
	if _, err := old.ReadAt(final, 0); err != nil {
		return fmt.Errorf("read the replaced file back: %w", err)
	}
	for i, c := range f.cells {
		if v := binary.LittleEndian.Uint64(final[c.off:]); v != copied[2*i] {
			c.Add(math.Float64frombits(v) - math.Float64frombits(copied[2*i]))
		}
		if c.ts {
			if v := binary.LittleEndian.Uint64(final[c.off+8:]); v != copied[2*i+1] {
				atomic.StoreUint64(tsWord(c.p.Load()), v)
			}
		}
	}
	return f.stampIdentity()
}

// mapAt maps fd, shared and writable, over the address range of m, replacing
// what is mapped there in one step.
func mapAt(m []byte, fd *os.File) error {
	_, err := unix.MmapPtr(int(fd.Fd()), 0, unsafe.Pointer(&m[0]), uintptr(len(m)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
	return err
}
