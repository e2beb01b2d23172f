package metrics

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/mmapstore"
)

func key(family, sample, help string, labels ...string) *mmapstore.Key {
	k := &mmapstore.Key{Family: family, Sample: sample, Help: help}
	for i := 0; i < len(labels); i += 2 {
		k.Labels = append(k.Labels, mmapstore.LabelPair{Name: labels[i], Value: labels[i+1]})
	}
	return k
}

func file(typ, mode, id string, samples ...mmapstore.Sample) mmapstore.FileSamples {
	name := typ + "_" + id + ".db"
	if typ == "gauge" {
		name = typ + "_" + mode + "_" + id + ".db"
	}
	return mmapstore.FileSamples{Path: "/d/" + name, Type: typ, Mode: mode, ID: id, Samples: samples}
}

func text(t *testing.T, m *merger, files ...mmapstore.FileSamples) string {
	t.Helper()
	var buf bytes.Buffer
	for _, mf := range m.merge(files) {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func TestMergeEdgeCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files []mmapstore.FileSamples
		want  string
	}{
		{"help differs between files: one series, first help",
			[]mmapstore.FileSamples{
				file("counter", "", "1", mmapstore.Sample{Key: key("c", "c_total", "first"), Value: 1}),
				file("counter", "", "2", mmapstore.Sample{Key: key("c", "c_total", "second"), Value: 2}),
			},
			"# HELP c_total first\n# TYPE c_total counter\nc_total 3\n"},
		{"histogram bucket layouts merge into the union, le by value",
			[]mmapstore.FileSamples{
				file("histogram", "", "1",
					mmapstore.Sample{Key: key("h", "h_sum", "x"), Value: 1},
					mmapstore.Sample{Key: key("h", "h_bucket", "x", "le", "1.0"), Value: 1},
					mmapstore.Sample{Key: key("h", "h_bucket", "x", "le", "+Inf"), Value: 0}),
				file("histogram", "", "2",
					mmapstore.Sample{Key: key("h", "h_sum", "x"), Value: 7},
					mmapstore.Sample{Key: key("h", "h_bucket", "x", "le", "0.5"), Value: 1},
					mmapstore.Sample{Key: key("h", "h_bucket", "x", "le", "1"), Value: 1},
					mmapstore.Sample{Key: key("h", "h_bucket", "x", "le", "+Inf"), Value: 1}),
			},
			"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 8\nh_count 4\n"},
		{"a pid label in a key: replaced in all mode, dropped in sum mode, kept elsewhere",
			[]mmapstore.FileSamples{
				file("gauge", "all", "1", mmapstore.Sample{Key: key("a", "a", "x", "pid", "99"), Value: 1}),
				file("gauge", "sum", "1", mmapstore.Sample{Key: key("s", "s", "x", "pid", "99"), Value: 1}),
				file("gauge", "sum", "2", mmapstore.Sample{Key: key("s", "s", "x", "pid", "98"), Value: 2}),
				file("counter", "", "1", mmapstore.Sample{Key: key("c", "c_total", "x", "pid", "99"), Value: 5}),
			},
			"# HELP a x\n# TYPE a gauge\na{pid=\"1\"} 1\n# HELP c_total x\n# TYPE c_total counter\nc_total{pid=\"99\"} 5\n# HELP s x\n# TYPE s gauge\ns 3\n"},
		{"one name as two types: the first file's type wins",
			[]mmapstore.FileSamples{
				file("counter", "", "1", mmapstore.Sample{Key: key("x", "x_total", "h"), Value: 1}),
				file("gauge", "all", "1", mmapstore.Sample{Key: key("x", "x", "h"), Value: 9}),
			},
			"# HELP x_total h\n# TYPE x_total counter\nx_total 1\n"},
		{"samples not named after their family are ignored",
			[]mmapstore.FileSamples{
				file("counter", "", "1",
					mmapstore.Sample{Key: key("c", "c_created", "h"), Value: 1e9},
					mmapstore.Sample{Key: key("c", "other", "h"), Value: 1},
					mmapstore.Sample{Key: key("c", "c_total", "h"), Value: 2}),
			},
			"# HELP c_total h\n# TYPE c_total counter\nc_total 2\n"},
		{"mostrecent: a tie keeps the first file's value, never set yields nothing",
			[]mmapstore.FileSamples{
				file("gauge", "mostrecent", "1", mmapstore.Sample{Key: key("m", "m", "h"), Value: 1, Timestamp: 5},
					mmapstore.Sample{Key: key("m", "m", "h", "k", "never"), Value: 3}),
				file("gauge", "mostrecent", "2", mmapstore.Sample{Key: key("m", "m", "h"), Value: 2, Timestamp: 5}),
			},
			"# HELP m h\n# TYPE m gauge\nm 1\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := text(t, newMerger(), c.files...); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// State kept between scrapes never leaks into a later one: with files as a Reader gives
// them (Seq set: the merger trusts its per-position cache) and as tests make them (Seq 0).
func TestMergeAcrossScrapes(t *testing.T) {
	t.Parallel()
	for _, seq := range []bool{false, true} {
		t.Run(map[bool]string{false: "no Seq", true: "Seq"}[seq], func(t *testing.T) { testMergeAcrossScrapes(t, seq) })
	}
}

func testMergeAcrossScrapes(t *testing.T, seq bool) {
	m := newMerger()
	ka, kb := key("c", "c_total", "h", "k", "a"), key("c", "c_total", "h", "k", "b")
	f1 := file("counter", "", "1", mmapstore.Sample{Key: ka, Value: 1}, mmapstore.Sample{Key: kb, Value: 2})
	f2 := file("counter", "", "2", mmapstore.Sample{Key: ka, Value: 10})
	if seq {
		f1.Seq, f2.Seq = 1, 2
	}
	head := "# HELP c_total h\n# TYPE c_total counter\n"
	steps := []struct {
		files []mmapstore.FileSamples
		want  string
	}{
		{[]mmapstore.FileSamples{f1, f2}, head + "c_total{k=\"a\"} 11\nc_total{k=\"b\"} 2\n"},
		{[]mmapstore.FileSamples{f2}, head + "c_total{k=\"a\"} 10\n"},
		{nil, ""},
		{[]mmapstore.FileSamples{f1}, head + "c_total{k=\"a\"} 1\nc_total{k=\"b\"} 2\n"},
		// The family changes type: its old slots must not be reused.
		{[]mmapstore.FileSamples{withSeq(file("gauge", "all", "1", mmapstore.Sample{Key: key("c", "c", "h", "k", "a"), Value: 4}), seq, 3)},
			"# HELP c h\n# TYPE c gauge\nc{k=\"a\",pid=\"1\"} 4\n"},
		{[]mmapstore.FileSamples{f1, f2}, head + "c_total{k=\"a\"} 11\nc_total{k=\"b\"} 2\n"},
	}
	for i, s := range steps {
		if got := text(t, m, s.files...); got != s.want {
			t.Fatalf("scrape %d: got\n%s\nwant\n%s", i, got, s.want)
		}
	}
	// Many scrapes later, without kb: pruned, and nothing breaks.
	for range 200 {
		text(t, m, f2)
	}
	if _, ok := m.keys[kb]; ok {
		t.Error("key not pruned")
	}
	if got := text(t, m, f1, f2); got != head+"c_total{k=\"a\"} 11\nc_total{k=\"b\"} 2\n" {
		t.Errorf("after pruning: %s", got)
	}
}

// The merger caches what it resolved for each entry by file and position; a file whose
// entries change under one path (replaced, rewritten, appended to) must still merge right.
func TestMergeFileCacheFollowsChanges(t *testing.T) {
	t.Parallel()
	for _, seq := range []bool{false, true} {
		t.Run(map[bool]string{false: "no Seq", true: "Seq"}[seq], func(t *testing.T) { testMergeFileCache(t, seq) })
	}
}

// withSeq sets f.Seq when seq is true: a Reader's file, whose entries at known positions
// do not change while its Seq stays.
func withSeq(f mmapstore.FileSamples, seq bool, n uint64) mmapstore.FileSamples {
	if seq {
		f.Seq = n
	}
	return f
}

func testMergeFileCache(t *testing.T, seq bool) {
	m := newMerger()
	ka, kb, kc := key("c", "c_total", "h", "k", "a"), key("c", "c_total", "h", "k", "b"), key("c", "c_total", "h", "k", "c")
	ga, gb := key("g", "g", "h", "k", "a"), key("g", "g", "h", "k", "b")
	c := func(id string, ss ...mmapstore.Sample) mmapstore.FileSamples { return file("counter", "", id, ss...) }
	s := func(k *mmapstore.Key, v float64) mmapstore.Sample { return mmapstore.Sample{Key: k, Value: v} }
	head := "# HELP c_total h\n# TYPE c_total counter\n"
	ghead := "# HELP g h\n# TYPE g gauge\n"
	q := func(f mmapstore.FileSamples, n uint64) mmapstore.FileSamples { return withSeq(f, seq, n) }
	steps := []struct {
		files []mmapstore.FileSamples
		want  string
	}{
		{[]mmapstore.FileSamples{q(c("1", s(ka, 1), s(kb, 2)), 10), q(c("2", s(ka, 10)), 20)},
			head + "c_total{k=\"a\"} 11\nc_total{k=\"b\"} 2\n"},
		{[]mmapstore.FileSamples{q(c("1", s(kb, 3), s(ka, 4)), 11), q(c("2", s(ka, 10)), 20)}, // replaced: keys swapped
			head + "c_total{k=\"a\"} 14\nc_total{k=\"b\"} 3\n"},
		{[]mmapstore.FileSamples{q(c("1", s(kb, 3)), 12), q(c("2", s(ka, 10), s(kc, 5)), 20)}, // shrunk, appended
			head + "c_total{k=\"a\"} 10\nc_total{k=\"b\"} 3\nc_total{k=\"c\"} 5\n"},
		{[]mmapstore.FileSamples{q(c("1", s(kb, 3), mmapstore.Sample{}), 12), q(c("2", s(ka, 10), s(kc, 6)), 20)}, // a nil key
			head + "c_total{k=\"a\"} 10\nc_total{k=\"b\"} 3\nc_total{k=\"c\"} 6\n"},
		{[]mmapstore.FileSamples{q(file("gauge", "all", "1", s(ga, 1), s(gb, 2)), 30), q(file("gauge", "all", "2", s(ga, 3)), 40)},
			ghead + "g{k=\"a\",pid=\"1\"} 1\ng{k=\"a\",pid=\"2\"} 3\ng{k=\"b\",pid=\"1\"} 2\n"},
		{[]mmapstore.FileSamples{q(file("gauge", "all", "1", s(gb, 7), s(ga, 8)), 31), q(file("gauge", "all", "2", s(ga, 3)), 40)},
			ghead + "g{k=\"a\",pid=\"1\"} 8\ng{k=\"a\",pid=\"2\"} 3\ng{k=\"b\",pid=\"1\"} 7\n"},
		// A counter file of the same name now comes first in path order... (type clash):
		// the family is a gauge only while its first file says so.
		{[]mmapstore.FileSamples{q(file("counter", "", "0", s(key("g", "g_total", "h", "k", "a"), 5)), 50),
			q(file("gauge", "all", "1", s(gb, 7), s(ga, 8)), 31)},
			"# HELP g_total h\n# TYPE g_total counter\ng_total{k=\"a\"} 5\n"},
		{[]mmapstore.FileSamples{q(file("gauge", "all", "1", s(gb, 7), s(ga, 9)), 31), q(file("gauge", "all", "2", s(ga, 3)), 40)},
			ghead + "g{k=\"a\",pid=\"1\"} 9\ng{k=\"a\",pid=\"2\"} 3\ng{k=\"b\",pid=\"1\"} 7\n"},
	}
	for i, st := range steps {
		for range 2 { // the second merge of the same input runs on the cache
			if got := text(t, m, st.files...); got != st.want {
				t.Fatalf("scrape %d: got\n%s\nwant\n%s", i, got, st.want)
			}
		}
	}
}

// The Reader gives one *Key to the same key bytes in every file, and resolve takes an
// entry's resolution from the previous file's same position when the key is the same: only
// while the two files' types agree, and never a per-file gauge's series.
func TestMergeSharedKeyAcrossFiles(t *testing.T) {
	t.Parallel()
	k := key("c", "c_total", "h")
	g := key("g", "g", "h")
	cases := []struct {
		name  string
		files []mmapstore.FileSamples
		want  string
	}{
		{"a counter's key in a gauge file after it: the first file's type wins",
			[]mmapstore.FileSamples{
				file("counter", "", "1", mmapstore.Sample{Key: k, Value: 1}),
				file("gauge", "all", "2", mmapstore.Sample{Key: k, Value: 2}),
			},
			"# HELP c_total h\n# TYPE c_total counter\nc_total 1\n"},
		{"a gauge of the all mode: one series per file",
			[]mmapstore.FileSamples{
				file("gauge", "all", "1", mmapstore.Sample{Key: g, Value: 1}),
				file("gauge", "all", "2", mmapstore.Sample{Key: g, Value: 2}),
			},
			"# HELP g h\n# TYPE g gauge\ng{pid=\"1\"} 1\ng{pid=\"2\"} 2\n"},
		{"a summed gauge: one series",
			[]mmapstore.FileSamples{
				file("gauge", "livesum", "1", mmapstore.Sample{Key: g, Value: 1}),
				file("gauge", "livesum", "2", mmapstore.Sample{Key: g, Value: 2}),
			},
			"# HELP g h\n# TYPE g gauge\ng 3\n"},
	}
	for _, c := range cases {
		m := newMerger()
		for range 2 { // resolved, then from the file caches
			if got := text(t, m, c.files...); got != c.want {
				t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
			}
		}
	}
}

// The file caches hold ids of series and key information, and the ids of what was
// forgotten are given again: under churn (every series replaced by new ones over and over,
// as route or worker labels come and go), the tables stay as large as what is live, and a
// file that keeps its cache across the churn still merges into its own series.
func TestMergeIdsAreGivenAgain(t *testing.T) {
	t.Parallel()
	for _, seq := range []bool{false, true} {
		m := newMerger()
		steady := withSeq(file("counter", "", "1", mmapstore.Sample{Key: key("s", "s_total", "h", "k", "x"), Value: 7}), seq, 1)
		peak := 0
		for round := range 20 {
			var ss []mmapstore.Sample
			want := "# HELP c_total h\n# TYPE c_total counter\n"
			for i := range 10 {
				label := string(rune('a'+i)) + string(rune('a'+round))
				ss = append(ss, mmapstore.Sample{Key: key("c", "c_total", "h", "k", label), Value: float64(round*10 + i)})
				want += "c_total{k=\"" + label + "\"} " + strconv.Itoa(round*10+i) + "\n"
			}
			churn := withSeq(file("counter", "", "2", ss...), seq, uint64(round+2))
			want += "# HELP s_total h\n# TYPE s_total counter\ns_total{k=\"x\"} 7\n"
			for range 70 { // past the 64 merges after which what was not seen is forgotten
				if got := text(t, m, steady, churn); got != want {
					t.Fatalf("seq %v, round %d: got\n%s\nwant\n%s", seq, round, got, want)
				}
			}
			peak = max(peak, len(m.series.ptrs), len(m.kinfos.ptrs))
		}
		// 11 series are live at a time; what a round left is pruned within 128 merges
		// (prune runs every 64), so up to two rounds' 10 series wait beside them, with id 0.
		if peak > 1+11+2*10 {
			t.Errorf("seq %v: the id tables grew to %d for 11 live series: ids are not given again", seq, peak)
		}
	}
}
