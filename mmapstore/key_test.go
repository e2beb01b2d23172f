package mmapstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeKey(t *testing.T) {
	tests := []struct {
		name                 string
		family, sample, help string
		names, values        []string
		want                 string
	}{
		{"no labels", "c", "c_total", "help", nil, nil, `["c", "c_total", {}, "help"]`},
		{"sorted by code point", "m", "m", "h", []string{"b", "a", "Z"}, []string{"3", "2", "1"},
			`["m", "m", {"Z": "1", "a": "2", "b": "3"}, "h"]`},
		{"quote and backslash", "m", "m", `q"\`, []string{"l"}, []string{`"\"`},
			`["m", "m", {"l": "\"\\\""}, "q\"\\"]`},
		{"short escapes", "m", "m", "", []string{"l"}, []string{"\n\r\t\b\f"},
			`["m", "m", {"l": "\n\r\t\b\f"}, ""]`},
		{"other controls", "m", "m", "", []string{"l"}, []string{"\x00\x01\x1f"},
			`["m", "m", {"l": "\u0000\u0001\u001f"}, ""]`},
		{"DEL", "m", "m", "", []string{"l"}, []string{"\x7f"}, `["m", "m", {"l": "\u007f"}, ""]`},
		{"latin1 lowercase hex", "m", "m", "é", nil, nil, `["m", "m", {}, "\u00e9"]`},
		{"BMP", "m", "m", "€\uffff", nil, nil, `["m", "m", {}, "\u20ac\uffff"]`},
		{"astral surrogate pair", "m", "m", "😀", nil, nil, `["m", "m", {}, "\ud83d\ude00"]`},
		{"not escaped", "m", "m", "/<>&'", nil, nil, `["m", "m", {}, "/<>&'"]`},
		{"invalid UTF-8", "m", "m", "a\xffb", nil, nil, `["m", "m", {}, "a\ufffdb"]`},
		{"printable ASCII untouched", "m", "m", " ~", nil, nil, `["m", "m", {}, " ~"]`},
		{"doc example", "m", "m_total", "help \"q\" é",
			[]string{"b", "a", "Z"}, []string{"x\"\n\\/<>&é😀\x01\x7f", "2", "3"},
			`["m", "m_total", {"Z": "3", "a": "2", "b": "x\"\n\\/<>&\u00e9\ud83d\ude00\u0001\u007f"}, "help \"q\" \u00e9"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(EncodeKey(tt.family, tt.sample, tt.names, tt.values, tt.help))
			if got != tt.want {
				t.Errorf("EncodeKey:\n got %s\nwant %s", got, tt.want)
			}
			k, err := DecodeKey([]byte(got))
			if err != nil {
				t.Fatalf("DecodeKey(%s): %v", got, err)
			}
			if k.Family != tt.family || k.Sample != tt.sample || len(k.Labels) != len(tt.names) {
				t.Errorf("DecodeKey(%s) = %+v", got, k)
			}
			if utf8.ValidString(tt.help) && k.Help != tt.help {
				t.Errorf("help round trip: got %q want %q", k.Help, tt.help)
			}
			for _, l := range k.Labels {
				i := indexOf(tt.names, l.Name)
				if i < 0 || tt.values[i] != l.Value {
					t.Errorf("label %q=%q not in input", l.Name, l.Value)
				}
			}
		})
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestEncodeKeyManyLabelsDoesNotMutateInput(t *testing.T) {
	var names, values []string
	for i := 30; i > 0; i-- {
		names = append(names, string(rune('A'+i)))
		values = append(values, strings.Repeat("v", i))
	}
	orig := append([]string(nil), names...)
	k, err := DecodeKey(EncodeKey("f", "s", names, values, "h"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, orig) {
		t.Error("EncodeKey reordered the caller's slice")
	}
	for i := 1; i < len(k.Labels); i++ {
		if k.Labels[i-1].Name >= k.Labels[i].Name {
			t.Fatalf("labels not sorted: %v", k.Labels)
		}
	}
}

func TestEncodeKeyAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	names, values := []string{"method", "code", "route"}, []string{"GET", "200", "/x"}
	n := testing.AllocsPerRun(100, func() { buf = AppendKey(buf[:0], "f", "f_total", names, values, "help") })
	if n != 0 {
		t.Errorf("AppendKey allocates %v times per call", n)
	}
}

func TestDecodeKeyTolerant(t *testing.T) {
	good := map[string]Key{
		`["a","b",{},"c"]`: {Family: "a", Sample: "b", Help: "c"},
		" [ \"a\" ,\n\"b\" , { \"x\" : \"1\" } , \"c\" ] ": {Family: "a", Sample: "b", Labels: []LabelPair{{"x", "1"}}, Help: "c"},
		`["\u00E9", "\/", {"b": "2", "a": "1"}, "é"]`:      {Family: "é", Sample: "/", Labels: []LabelPair{{"a", "1"}, {"b", "2"}}, Help: "é"},
		`["a", "b", {"x": "1", "x": "2"}, ""]`:             {Family: "a", Sample: "b", Labels: []LabelPair{{"x", "2"}}},
		`["\ud83d\ude00", "\ud800", {}, ""]`:               {Family: "😀", Sample: "\ufffd"},
	}
	for in, want := range good {
		got, err := DecodeKey([]byte(in))
		if err != nil {
			t.Errorf("DecodeKey(%s): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeKey(%s) = %#v, want %#v", in, got, want)
		}
	}
	bad := []string{
		``, `[`, `[]`, `["a", "b", {}]`, `["a", "b", {}, "c", "d"]`, `["a", "b", [], "c"]`,
		`["a", "b", {"x": 1}, "c"]`, `["a", "b", {}, "c"] x`, "[\"a\n\", \"b\", {}, \"c\"]",
		`["a\q", "b", {}, "c"]`, `["\u12", "b", {}, "c"]`, `["a", "b", {"x" "1"}, "c"]`,
		`["a", "b", {"x": "1",}, "c"]`, `{"a": "b"}`, `["a", "b", {}, "c"`, "\x00\x00\x00\x00",
		"[\"a\xff\", \"b\", {}, \"c\"]",
	}
	for _, in := range bad {
		if _, err := DecodeKey([]byte(in)); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%q) = %v, want ErrBadKey", in, err)
		}
	}
}

// TestEncodeKeyMatchesPython compares against the real json.dumps on random
// strings (make test installs python3).
func TestEncodeKeyMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 (make test installs it): %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune{0, 1, 0x1f, ' ', '"', '\\', '/', '<', '>', '&', '\n', '\r', '\t', '\b', '\f', 0x7e, 0x7f, 0x80,
		'a', 'Z', '_', 'é', 'ÿ', 'Ā', '€', 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff}
	randStr := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	type tc struct {
		F, S, H string
		N, V    []string
	}
	var cases []tc
	var in bytes.Buffer
	for range 300 {
		c := tc{F: randStr(), S: randStr(), H: randStr()}
		seen := map[string]bool{}
		for range rng.IntN(4) {
			n := randStr()
			if seen[n] {
				continue
			}
			seen[n] = true
			c.N, c.V = append(c.N, n), append(c.V, randStr())
		}
		cases = append(cases, c)
		line, _ := json.Marshal(c)
		in.Write(line)
		in.WriteByte('\n')
	}
	cmd := exec.Command(py, "-c", `
import json, sys
for line in sys.stdin:
    c = json.loads(line)
    print(json.dumps([c["F"], c["S"], dict(zip(c["N"] or [], c["V"] or [])), c["H"]], sort_keys=True))
`)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		c := cases[i]
		if got := string(EncodeKey(c.F, c.S, c.N, c.V, c.H)); got != sc.Text() {
			t.Errorf("case %d %+q:\n go %s\n py %s", i, c, got, sc.Text())
		}
	}
	if _, err := os.Stat(py); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeKey: whatever DecodeKey accepts re-encodes to a key that decodes
// to the same Key, and never panics.
func FuzzDecodeKey(f *testing.F) {
	f.Add([]byte(`["m", "m_total", {"Z": "3", "a": "2", "b": "x\"\n\\/<>&\u00e9\ud83d\ude00\u0001\u007f"}, "help \"q\" \u00e9"]`))
	f.Add([]byte(`["a","b",{"x":"1","x":"2"},""]`))
	f.Add([]byte(`["\ud800\u0041", "\/", {}, "é"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			return
		}
		names, values := make([]string, len(k.Labels)), make([]string, len(k.Labels))
		for i, l := range k.Labels {
			names[i], values[i] = l.Name, l.Value
		}
		enc := EncodeKey(k.Family, k.Sample, names, values, k.Help)
		k2, err := DecodeKey(enc)
		if err != nil || !reflect.DeepEqual(k, k2) {
			t.Fatalf("%q -> %+v -> %s -> %+v, %v", b, k, enc, k2, err)
		}
		if string(EncodeKey(k2.Family, k2.Sample, names, values, k2.Help)) != string(enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzDecodeKeyMatchesJSON: DecodeKey accepts exactly the valid UTF-8 JSON arrays of a
// string, a string, an object of strings and a string, and reads them as encoding/json
// does; a Reader's decoder (interning, its buffers reused from key to key) gives the same
// Key.
func FuzzDecodeKeyMatchesJSON(f *testing.F) {
	f.Add([]byte(`["m", "m_total", {"b": "x\"\n\\/\u00e9\ud83d\ude00\u0001", "a": "2"}, "help"]`))
	f.Add([]byte(` [ "a" , "b" , { "x" : "1" , "x" : "2" } , "" ] `))
	f.Add([]byte(`["\ud800\u0041", "\/", {}, "é"]`))
	f.Add([]byte(`["a", null, {}, "h"]`))
	f.Add([]byte(`["a", "b", {"l": 1}, "h"]`))
	f.Add([]byte(`["a", "b", {}, "h", "extra"]`))
	f.Add([]byte("[\"a\xff\", \"b\", {}, \"h\"]"))
	f.Add([]byte(`["a", "b", {}, "h"]x`))
	dec := keyDecoder{intern: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		want, jerr := jsonKey(b)
		if (err == nil) != (jerr == nil) {
			t.Fatalf("%q: DecodeKey: %v; encoding/json: %v", b, err, jerr)
		}
		ik, ierr := dec.decode(string(b))
		if (ierr == nil) != (err == nil) {
			t.Fatalf("%q: interning decoder: %v; DecodeKey: %v", b, ierr, err)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(k, want) || !reflect.DeepEqual(ik, k) {
			t.Fatalf("%q:\nDecodeKey     %+v\nencoding/json %+v\ninterning     %+v", b, k, want, ik)
		}
	})
}

// jsonKey decodes a key with encoding/json, as DecodeKey should.
func jsonKey(b []byte) (Key, error) {
	if !utf8.Valid(b) {
		return Key{}, errors.New("invalid UTF-8")
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return Key{}, err
	}
	if len(parts) != 4 {
		return Key{}, fmt.Errorf("%d elements", len(parts))
	}
	for _, p := range parts {
		if string(p) == "null" { // encoding/json reads null into anything
			return Key{}, errors.New("null")
		}
	}
	var k Key
	var labels map[string]string
	if err := errors.Join(json.Unmarshal(parts[0], &k.Family), json.Unmarshal(parts[1], &k.Sample),
		json.Unmarshal(parts[2], &labels), json.Unmarshal(parts[3], &k.Help)); err != nil {
		return Key{}, err
	}
	for name, value := range labels {
		k.Labels = append(k.Labels, LabelPair{name, value})
	}
	slices.SortFunc(k.Labels, func(a, b LabelPair) int { return strings.Compare(a.Name, b.Name) })
	return k, nil
}
