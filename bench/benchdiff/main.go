package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// pair is one comparison: what a costs over b.
type pair struct{ a, b string }

func parsePairs(args []string) ([]pair, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("usage: benchdiff NAME=BASE... (go test -bench output on stdin)")
	}
	var out []pair
	for _, arg := range args {
		a, b, ok := strings.Cut(arg, "=")
		if !ok || a == "" || b == "" {
			return nil, fmt.Errorf("%q: want NAME=BASE", arg)
		}
		out = append(out, pair{a, b})
	}
	return out, nil
}

func run(args []string, in io.Reader, stdout, stderr io.Writer) int {
	pairs, err := parsePairs(args)
	if err != nil {
		fmt.Fprintln(stderr, "benchdiff:", err)
		return 2
	}
	res, failed, err := read(in, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "benchdiff:", err)
		return 1
	}
	code := 0
	if failed {
		fmt.Fprintln(stderr, "benchdiff: the benchmarks failed")
		code = 1
	}
	for _, p := range pairs {
		if err := report(stdout, res, p); err != nil {
			fmt.Fprintln(stderr, "benchdiff:", err)
			code = 1
		}
	}
	return code
}

// results holds, by benchmark name and unit, the values of every run in
// input order.
type results map[string]map[string][]float64

// benchLine matches "BenchmarkName-8   1000   123.4 ns/op   0 B/op ...".
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// read copies in to out and collects the benchmark lines.
func read(in io.Reader, out io.Writer) (results, bool, error) {
	res := results{}
	failed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if res[m[1]] == nil {
				res[m[1]] = map[string][]float64{}
			}
			res[m[1]][f[i+1]] = append(res[m[1]][f[i+1]], v)
		}
	}
	return res, failed, sc.Err()
}

// report prints what p.a costs over p.b, unit by unit.
func report(w io.Writer, res results, p pair) error {
	a, b := res[p.a], res[p.b]
	switch {
	case a == nil:
		return fmt.Errorf("no benchmark %q in the input", p.a)
	case b == nil:
		return fmt.Errorf("no benchmark %q in the input", p.b)
	}
	var units []string
	for u := range a {
		if _, ok := b[u]; ok {
			units = append(units, u)
		}
	}
	if len(units) == 0 {
		return fmt.Errorf("%q and %q report no unit in common", p.a, p.b)
	}
	slices.SortFunc(units, func(x, y string) int {
		if r := unitRank(x) - unitRank(y); r != 0 {
			return r
		}
		return strings.Compare(x, y)
	})
	n := min(len(a[units[0]]), len(b[units[0]]))
	fmt.Fprintf(w, "\n%s over %s (medians of %d runs; paired: the i-th run of each, median and range):\n", p.a, p.b, n)
	for _, u := range units {
		av, bv := a[u], b[u]
		k := min(len(av), len(bv))
		diffs := make([]float64, k)
		for i := range k {
			diffs[i] = av[i] - bv[i]
		}
		slices.Sort(diffs)
		fmt.Fprintf(w, "  %-11s %s  (%s %s, %s %s)  paired %s … %s\n", u,
			signed(median(diffs)), p.a, num(median(sorted(av))), p.b, num(median(sorted(bv))),
			signed(diffs[0]), signed(diffs[k-1]))
	}
	return nil
}

// unitRank orders the usual units first.
func unitRank(u string) int {
	if i := slices.Index([]string{"ns/op", "cpu-ns/op", "B/op", "allocs/op"}, u); i >= 0 {
		return i
	}
	return 10
}

func sorted(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func signed(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if v >= 0 {
		s = "+" + s
	}
	return strings.TrimSuffix(s, ".0")
}
