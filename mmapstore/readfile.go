package mmapstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

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

// parseBytes parses a whole file image, deciding its layout as a Reader does.
func parseBytes(data []byte) ([]Sample, Layout, error) {
	used, err := checkHeader(data)
	if err != nil {
		return nil, Current, err
	}
	guess, alt, err := guessLayout(data, headerSize, used)
	if err != nil {
		return nil, guess, err
	}
	samples, err := parseSamples(data, used, guess)
	if err == nil || !alt {
		return samples, guess, err
	}
	other := Legacy
	if guess == Legacy {
		other = Current
	}
	if samples, err2 := parseSamples(data, used, other); err2 == nil {
		return samples, other, nil
	}
	return nil, guess, err
}

// parseSamples parses the entries of data[headerSize:used] in layout l.
func parseSamples(data []byte, used int, l Layout) ([]Sample, error) {
	var samples []Sample
	var dec keyDecoder
	keys := make(map[string]*Key)
	err := walk(data, headerSize, used, l, func(e rawEntry) error {
		k := keys[string(e.key)]
		if k == nil {
			d, err := dec.decode(string(e.key))
			if err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			k = &d
			keys[string(e.key)] = k
		}
		s := Sample{Key: k, Value: math.Float64frombits(binary.LittleEndian.Uint64(data[e.valueOff:]))}
		if l == Current {
			s.Timestamp = math.Float64frombits(binary.LittleEndian.Uint64(data[e.valueOff+8:]))
		}
		samples = append(samples, s)
		return nil
	})
	return samples, err
}
