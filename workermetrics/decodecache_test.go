package workermetrics

import (
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// mergedText is what a scrape of the sources serves, as protobuf text.
func mergedText(t *testing.T, m *merger, srcs []source) string {
	t.Helper()
	out, _ := m.merge(srcs, nil)
	var b strings.Builder
	for _, mf := range out {
		b.WriteString(prototext.Format(mf))
	}
	return b.String()
}

// TestDecodeCache decodes a worker's successive snapshots with one decoder
// (as the master does), some families changing between them, and checks
// every merge against that of a fresh decoder: a family whose message is
// unchanged is reused, a changed one decoded anew.
func TestDecodeCache(t *testing.T) {
	m := &merger{perWorker: DefaultPerWorker}
	base := richFamilies(t)
	d := testDecoder()
	var prev []family
	for round := range 6 {
		fams := make([]*dto.MetricFamily, len(base))
		for i, mf := range base {
			fams[i] = proto.Clone(mf).(*dto.MetricFamily)
		}
		switch round {
		case 2: // one counter and one gauge change
			fams[0].Metric[0].Counter.Value = proto.Float64(float64(round))
			for _, mf := range fams {
				if mf.GetName() == "g" {
					mf.Metric[0].Gauge.Value = proto.Float64(42)
				}
			}
		case 3: // a family goes away: every later one moves
			fams = fams[1:]
		case 4: // and comes back with a new series
			extra := proto.Clone(base[0].Metric[0]).(*dto.Metric)
			extra.Label = append(extra.Label, &dto.LabelPair{Name: proto.String("zz"), Value: proto.String("new")})
			fams[0].Metric = append(fams[0].Metric, extra)
		}
		snap := appendSnapshot(nil, uint64(round+1), fams)
		got, want := decodeBoth(t, d, snap)
		gotText := mergedText(t, m, []source{{worker: "0a", fams: got, perWorker: true}})
		wantText := mergedText(t, m, []source{{worker: "0a", fams: want, perWorker: true}})
		if gotText != wantText {
			t.Fatalf("round %d: cached decoder serves\n%s\nwant\n%s", round, gotText, wantText)
		}
		if round == 1 {
			for i := range got {
				if fmt.Sprintf("%p", got[i].sets) != fmt.Sprintf("%p", prev[i].sets) {
					t.Errorf("round 1: family %s decoded again, though unchanged", got[i].mf.GetName())
				}
			}
		}
		prev = got
	}
}
