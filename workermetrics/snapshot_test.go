package workermetrics

import (
	"bytes"
	"errors"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	fams := parse(t, `
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{kind="a"} 3
# HELP queue Queued.
# TYPE queue gauge
queue 1.5
`)
	var buf bytes.Buffer
	if err := appendSnapshot(&buf, 42, fams); err != nil {
		t.Fatal(err)
	}
	seq, got, err := readSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil || seq != 42 || len(got) != 2 || got[0].GetName() != "jobs_total" || got[1].GetMetric()[0].GetGauge().GetValue() != 1.5 {
		t.Fatalf("read back seq %d, %v, %v", seq, got, err)
	}
	// An empty snapshot is valid.
	buf.Reset()
	appendSnapshot(&buf, 1, nil)
	if _, got, err := readSnapshot(&buf); err != nil || len(got) != 0 {
		t.Errorf("empty snapshot: %v, %v", got, err)
	}
}

func TestBadSnapshotsAreErrors(t *testing.T) {
	var good bytes.Buffer
	appendSnapshot(&good, 7, parse(t, "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"))
	b := good.Bytes()
	huge := append([]byte(nil), b...)
	huge[16+7] = 0x7f // a body length of petabytes
	garbage := append([]byte(nil), b...)
	garbage[headerSize] = 0xff // a varint that never ends
	for name, data := range map[string][]byte{
		"empty":          nil,
		"short header":   b[:10],
		"foreign":        append([]byte("PROMETHEUS_MULTIPROC"), b[20:]...),
		"truncated body": b[:len(b)-1],
		"trailing bytes": append(append([]byte(nil), b...), 1, 2, 3),
		"huge length":    huge,
		"corrupt body":   garbage,
	} {
		_, _, err := readSnapshot(bytes.NewReader(data))
		if name == "trailing bytes" {
			// Extra bytes after the body are not read: a stream (the
			// socket) ends where the header says.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, errBadSnapshot) {
			t.Errorf("%s: err = %v, want errBadSnapshot", name, err)
		}
	}
}

func TestParseInstance(t *testing.T) {
	for _, tc := range []struct {
		file   string
		ok     bool
		id     string
		pid    int
		suffix string
	}{
		{"0a_4242_lx3k9ab.snap", true, "0a", 4242, snapSuffix},
		{"12b_7_1.sock", true, "12b", 7, sockSuffix},
		{"0a_4242_lx3k9ab.snap.tmp", true, "0a", 4242, tmpSuffix},
		{"0a_4242.snap", false, "", 0, ""},
		{"0a_0_1.snap", false, "", 0, ""},
		{"0a_x_1.snap", false, "", 0, ""},
		{"0a_1_!.snap", false, "", 0, ""},
		{"0 a_1_1.snap", false, "", 0, ""},
		{"counter_0a.db", false, "", 0, ""},
		{"_1_1.snap", false, "", 0, ""},
		{".snap", false, "", 0, ""},
	} {
		in, suffix, ok := parseInstance(tc.file)
		if ok != tc.ok || in.id != tc.id || in.pid != tc.pid || suffix != tc.suffix {
			t.Errorf("parseInstance(%q) = %+v, %q, %v", tc.file, in, suffix, ok)
		}
	}
}
