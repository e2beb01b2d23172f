package workermetrics

import (
	"bytes"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// FuzzDecodeSnapshot feeds arbitrary bytes to the decoder as two workers'
// snapshots: it must never panic, and whatever it accepts must merge (with
// a dead worker's totals folded in) into families that every exposition
// format encodes without error, so a worker cannot break the master's
// /metrics.
func FuzzDecodeSnapshot(f *testing.F) {
	var buf bytes.Buffer
	for _, text := range []string{
		"# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n",
		"# HELP g G.\n# TYPE g gauge\ng{y=\"2\"} 2\n# HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
	} {
		buf.Reset()
		buf.Write(appendSnapshot(nil, 1, parse(f, text)))
		f.Add(buf.Bytes()[headerSize:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := &merger{perWorker: DefaultPerWorker}
		m.reserve(nil)
		var srcs []source
		var dead []family
		for _, id := range []string{"0a", "1a", "2a"} {
			fams, err := newDecoder(id, m.perWorkerFamily).decodeSnapshot(body)
			if err != nil {
				return
			}
			if id == "2a" {
				dead = m.fold(dead, fams)
				continue
			}
			srcs = append(srcs, source{worker: id, fams: fams, perWorker: true})
		}
		out, _ := m.merge(srcs, dead)
		for _, format := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtProtoDelim} {
			var w bytes.Buffer
			enc := expfmt.NewEncoder(&w, format)
			for _, mf := range out {
				if err := enc.Encode(mf); err != nil {
					t.Fatalf("%s: %v\n%v", format, err, mf)
				}
			}
		}
	})
}
