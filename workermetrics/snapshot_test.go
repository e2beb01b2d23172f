package workermetrics

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func testDecoder() *decoder { return testDecoderFor("0a") }

func testDecoderFor(id string) *decoder {
	return newDecoder(id, (&merger{perWorker: DefaultPerWorker}).perWorkerFamily)
}

// decodeBoth decodes the body of snap with d, which may hold what it decoded
// before, and with a fresh decoder, the reference.
func decodeBoth(t *testing.T, d *decoder, snap []byte) (got, want []family) {
	t.Helper()
	got, err := d.decodeSnapshot(snap[headerSize:])
	if err != nil {
		t.Fatal(err)
	}
	want, err = testDecoder().decodeSnapshot(snap[headerSize:])
	if err != nil {
		t.Fatal(err)
	}
	return got, want
}

// richFamilies gathers every kind of client_golang metric: counters with
// exemplars, gauges, untyped, summaries, classic and native histograms
// (negative and zero observations too), an explicit timestamp, the Go
// and process collectors.
func richFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "C."}, []string{"a", "b"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "G.", ConstLabels: prometheus.Labels{"z": "1"}})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s", Help: "S.", Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001}})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "H.", Buckets: []float64{0.1, 1, 10},
		NativeHistogramBucketFactor: 1.1, NativeHistogramZeroThreshold: 0.001})
	reg.MustRegister(c, g, s, h, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "u", Help: "U."}, func() float64 { return math.Inf(-1) }))
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		d := prometheus.NewDesc("stamped", "With a timestamp.", nil, nil)
		ch <- prometheus.NewMetricWithTimestamp(time.UnixMilli(1700000000123), prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 2))
	}))
	c.WithLabelValues("x", "ü").Add(3)
	c.WithLabelValues("y", "").(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"trace": "abc"})
	g.Set(math.NaN())
	for _, v := range []float64{-5, -0.5, 0, 0.0005, 0.05, 0.5, 5, 50, 1e300} {
		s.Observe(v)
		h.Observe(v)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// withoutExemplars strips what snapshots leave out.
func withoutExemplars(fams []*dto.MetricFamily) {
	for _, mf := range fams {
		for _, m := range mf.Metric {
			if m.Counter != nil {
				m.Counter.Exemplar, m.Counter.CreatedTimestamp = nil, nil
			}
			if m.Summary != nil {
				m.Summary.CreatedTimestamp = nil
			}
			if h := m.Histogram; h != nil {
				h.CreatedTimestamp, h.Exemplars = nil, nil
				for _, b := range h.Bucket {
					b.Exemplar = nil
				}
			}
		}
	}
}

// The hand-written encoder and decoder agree with the protobuf library on
// everything a snapshot carries, both ways.
func TestWireCompatibleWithProtobuf(t *testing.T) {
	want := richFamilies(t)
	format := expfmt.NewFormat(expfmt.TypeProtoDelim).WithEscapingScheme(model.NoEscaping)
	// The library's encoding, exemplars and all.
	var lib bytes.Buffer
	enc := expfmt.NewEncoder(&lib, format)
	for _, mf := range want {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	withoutExemplars(want)

	// Ours encoded, the library decodes.
	var buf bytes.Buffer
	buf.Write(appendSnapshot(nil, 1, want))
	dec := expfmt.NewDecoder(bytes.NewReader(buf.Bytes()[headerSize:]), format)
	for i, w := range want {
		var got dto.MetricFamily
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("family %d: %v", i, err)
		}
		if got.String() != w.String() {
			t.Errorf("library decoding of ours:\n%v\nwant\n%v", &got, w)
		}
	}

	// The library's encoded, ours decodes.
	got, err := testDecoder().decodeSnapshot(lib.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d families, want %d", len(got), len(want))
	}
	for i, f := range got {
		if f.drop != noDrop {
			t.Errorf("%s: dropped (%v)", f.mf.GetName(), f.drop)
		}
		// Per-worker families come with their worker label: compare
		// without it.
		mf := served(&f)
		for j, m := range mf.Metric {
			m.Label = f.sets[j].labels
		}
		if mf.String() != want[i].String() {
			t.Errorf("our decoding of the library's:\n%v\nwant\n%v", mf, want[i])
		}
	}
}

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
	buf.Write(appendSnapshot(nil, 42, fams))
	seq, got, err := readSnapshot(bytes.NewReader(buf.Bytes()), testDecoder())
	if err != nil || seq != 42 || len(got) != 2 || got[0].vals[0] != 3 || got[1].mf.GetMetric()[0].GetGauge().GetValue() != 1.5 {
		t.Fatalf("read back seq %d, %v, %v", seq, got, err)
	}
	// An empty snapshot is valid.
	buf.Reset()
	buf.Write(appendSnapshot(nil, 1, nil))
	if _, got, err := readSnapshot(&buf, testDecoder()); err != nil || len(got) != 0 {
		t.Errorf("empty snapshot: %v, %v", got, err)
	}
}

func TestBadSnapshotsAreErrors(t *testing.T) {
	var good bytes.Buffer
	good.Write(appendSnapshot(nil, 7, parse(t, "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n")))
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
		_, _, err := readSnapshot(bytes.NewReader(data), testDecoder())
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
