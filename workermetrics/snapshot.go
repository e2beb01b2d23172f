package workermetrics

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// A snapshot is what a worker's gatherers returned at one moment, as a worker
// writes it to its file and answers it on its socket:
//
//	offset 0   8 bytes  magic "HERDWMS1"
//	offset 8   8 bytes  sequence number, little endian: increases with every
//	                    gather of the worker, so the newer of two snapshots of
//	                    one worker is the one with the larger number
//	offset 16  8 bytes  length of the body, little endian
//	offset 24           body: the metric families, delimited protobuf
//	                    (client_model's MetricFamily, each preceded by its
//	                    varint length, as in Prometheus' protobuf format)
//
// The length makes a snapshot cut short (a worker killed while answering)
// an error instead of a smaller, valid-looking set of families.
const (
	snapMagic  = "HERDWMS1"
	headerSize = 24
	// maxSnapshot bounds what the master reads for one worker.
	maxSnapshot = 64 << 20
)

// errBadSnapshot marks a snapshot that is not one (foreign, truncated,
// corrupt).
var errBadSnapshot = errors.New("workermetrics: bad snapshot")

// appendSnapshot appends the encoding of fams with sequence number seq to
// b.
func appendSnapshot(b []byte, seq uint64, fams []*dto.MetricFamily) []byte {
	start := len(b)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint64(b, 0) // the body's length, below
	for _, mf := range fams {
		b = appendNested(b, 0, func(b []byte) []byte { return appendFamily(b, mf) })
	}
	binary.LittleEndian.PutUint64(b[start+16:], uint64(len(b)-start-headerSize))
	return b
}

// readSnapshot reads one snapshot from r, which must end right after it,
// with the decoder of the worker process that wrote it.
func readSnapshot(r io.Reader, d *decoder) (seq uint64, fams []family, err error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: header: %w", errBadSnapshot, err)
	}
	if string(hdr[:8]) != snapMagic {
		return 0, nil, fmt.Errorf("%w: no magic number", errBadSnapshot)
	}
	seq = binary.LittleEndian.Uint64(hdr[8:])
	n := binary.LittleEndian.Uint64(hdr[16:])
	if n > maxSnapshot {
		return 0, nil, fmt.Errorf("%w: body of %d bytes, more than %d", errBadSnapshot, n, maxSnapshot)
	}
	// The decoder copies what it keeps: its buffer serves every read.
	if uint64(cap(d.body)) < n {
		d.body = make([]byte, n, n+n/8)
	}
	body := d.body[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("%w: body: %w", errBadSnapshot, err)
	}
	fams, err = d.decodeSnapshot(body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errBadSnapshot, err)
	}
	return seq, fams, nil
}

// decodeSnapshot decodes a snapshot's body: delimited MetricFamily
// messages. A name given twice makes both families invalid.
//
// A family whose message is, byte for byte, the one at the same position in
// the worker's last snapshot is that snapshot's decoded family again (the
// merge never changes a decoded family): a worker whose families did not
// change since the last scrape costs a comparison. A family that changed
// in its values only is decoded against that one (see revalue).
func (d *decoder) decodeSnapshot(body []byte) ([]family, error) {
	fams := make([]family, 0, len(d.cache))
	for len(body) > 0 {
		l, n := binary.Uvarint(body)
		if n <= 0 || l > uint64(len(body)-n) {
			return nil, fmt.Errorf("family %d: %w", len(fams), errWire)
		}
		msg := body[n : n+int(l)]
		i := len(fams)
		if i < len(d.cache) && bytes.Equal(d.cache[i].msg, msg) {
			fams = append(fams, d.reuse(d.cache[i].f))
		} else if f, ok := d.revalue(msg, i); ok {
			fams = append(fams, f)
		} else {
			f, err := d.decodeFamily(msg)
			if err != nil {
				return nil, fmt.Errorf("family %d: %w", len(fams), err)
			}
			if i == len(d.cache) {
				d.cache = append(d.cache, cachedFamily{})
			}
			d.cache[i] = cachedFamily{msg: append(d.cache[i].msg[:0], msg...), f: f}
			fams = append(fams, f)
		}
		body = body[n+int(l):]
	}
	clear(d.cache[len(fams):])
	d.cache = d.cache[:len(fams)]
	d.endSnapshot()
	seen := make(map[string]int, len(fams))
	for i := range fams {
		name := fams[i].mf.GetName()
		if j, dup := seen[name]; dup {
			fams[i].drop, fams[j].drop = dropInvalid, dropInvalid
		}
		seen[name] = i
	}
	return fams, nil
}

// readSnapshotFile reads the snapshot file path.
func readSnapshotFile(path string, d *decoder) (seq uint64, fams []family, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	seq, fams, err = readSnapshot(f, d)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	return seq, fams, nil
}

// The files of one worker process in the directory, named after its
// instance "<id>_<pid>_<nonce>": the id is the worker's file id ("0a"), the
// nonce (its start time) keeps the name unique when a pid is reused.
//
//	<instance>.snap      the last snapshot, replaced atomically (rename)
//	<instance>.snap.tmp  the next snapshot while it is written
//	<instance>.sock      the unix socket that answers fresh snapshots
const (
	snapSuffix = ".snap"
	tmpSuffix  = ".snap.tmp"
	sockSuffix = ".sock"
)

// instance is the parsed name of a worker process's files.
type instance struct {
	name    string // "<id>_<pid>_<nonce>"
	id      string
	pid     int
	started int64 // the nonce: the process's start time, Unix nanoseconds
}

// parseInstance parses a file name of the directory; ok is false for names
// that are not a worker's file.
func parseInstance(file string) (in instance, suffix string, ok bool) {
	for _, s := range [...]string{tmpSuffix, snapSuffix, sockSuffix} {
		if base, found := strings.CutSuffix(file, s); found {
			in.name, suffix = base, s
			break
		}
	}
	if in.name == "" {
		return instance{}, "", false
	}
	parts := strings.Split(in.name, "_")
	if len(parts) != 3 || checkID(parts[0]) != nil {
		return instance{}, "", false
	}
	pid, err := strconv.ParseUint(parts[1], 10, 31)
	if err != nil || pid == 0 {
		return instance{}, "", false
	}
	started, err := strconv.ParseInt(parts[2], 36, 64)
	if err != nil || started < 0 {
		return instance{}, "", false
	}
	in.id, in.pid, in.started = parts[0], int(pid), started
	return in, suffix, true
}

// checkID validates a worker's file id: letters, digits and '-', as in
// package metrics (it becomes part of file names and a label value).
func checkID(id string) error {
	if id == "" || len(id) > 32 {
		return fmt.Errorf("workermetrics: invalid worker id %q: want 1 to 32 letters, digits or '-'", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("workermetrics: invalid worker id %q: want letters, digits and '-' only", id)
		}
	}
	return nil
}
