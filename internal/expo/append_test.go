package expo

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// Each helper writes what expfmt writes for the same value, in both
// formats, on random and edge-case inputs.
func TestAppendMatchesExpfmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	values := []float64{0, math.Copysign(0, -1), 1, -1, 999999, -999999, 1e6, 1e21, 0.1, 1.5, -2.25e-9,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 123456.0, 5e5 + 0.5}
	for range 500 {
		values = append(values, rng.NormFloat64()*math.Pow(10, float64(rng.IntN(30)-15)), float64(rng.IntN(3e6)-15e5))
	}
	alphabet := []string{"a", "\\", "\n", "\"", "é", "{", "}", ",", "=", " ", "\t"}
	for i, v := range values {
		var lv strings.Builder
		for range rng.IntN(8) {
			lv.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		mf := &dto.MetricFamily{
			Name: proto.String("x"), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{
				Label: []*dto.LabelPair{{Name: proto.String("l"), Value: proto.String(lv.String())}},
				Gauge: &dto.Gauge{Value: proto.Float64(v)},
			}},
		}
		for _, om := range []bool{false, true} {
			var want bytes.Buffer
			if om {
				expfmt.MetricFamilyToOpenMetrics(&want, mf)
			} else {
				expfmt.MetricFamilyToText(&want, mf)
			}
			labels := string(AppendEscaped(append([]byte(nil), `l="`...), lv.String(), true)) + `"`
			got := AppendSeries(nil, "x", "", labels)
			got = append(AppendFloat(got, v, om), '\n')
			if !strings.Contains(want.String(), string(got)) {
				t.Fatalf("value %d (%v, label %q, om %v): wrote %q, expfmt wrote %q", i, v, lv.String(), om, got, want.String())
			}
		}
	}
}

func TestAppenderAppends(t *testing.T) {
	var b []byte
	a := Appender{&b}
	a.Write([]byte("ab"))
	a.WriteString("c")
	a.WriteByte('d')
	a.WriteRune('é')
	if string(b) != "abcdé" {
		t.Errorf("got %q", b)
	}
}

func TestBucketsAndBounds(t *testing.T) {
	var c Bounds
	for _, le := range []float64{0.005, 0.1, 1, 2.5, 1e6, math.Inf(1)} {
		for _, om := range []bool{false, true} {
			if got, want := c.Get(le, om), string(AppendFloat(nil, le, om)); got != want {
				t.Errorf("Get(%v, %v) = %q, want %q", le, om, got, want)
			}
		}
	}
	if got := c.Texts(0.1); got != c.Texts(0.1) {
		t.Error("a bound rendered twice")
	}
	for i := range maxBounds + 10 {
		c.Get(float64(i)+0.5, false)
	}
	if len(c.m) > maxBounds {
		t.Errorf("%d bounds kept, want at most %d", len(c.m), maxBounds)
	}
	if got := string(AppendBucket(nil, "x", `a="b"`, "0.1")); got != `x_bucket{a="b",le="0.1"} ` {
		t.Errorf("with labels: %q", got)
	}
	if got := string(AppendBucket(nil, "x", "", "+Inf")); got != `x_bucket{le="+Inf"} ` {
		t.Errorf("without labels: %q", got)
	}
}
