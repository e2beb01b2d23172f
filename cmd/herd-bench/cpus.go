package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuList is a set of CPU numbers, sorted, as taskset -c takes it.
type cpuList []int

// parseCPUList reads "0", "1-3", "0,2-3".
func parseCPUList(s string) (cpuList, error) {
	var out cpuList
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad cpu %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// String formats the list as taskset -c reads it ("0-2,5").
func (l cpuList) String() string {
	var parts []string
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(l[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", l[i], l[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// allowedCPUs is the set of CPUs this process may run on.
func allowedCPUs() (cpuList, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var out cpuList
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// splitCPUs is the default pinned split: the load generator gets the first
// half of the CPUs (at least one), the server the rest. On 2 CPUs: wrk on
// the first, the server on the second.
func splitCPUs(all cpuList) (server, load cpuList, err error) {
	if len(all) < 2 {
		return nil, nil, fmt.Errorf("pinning needs at least 2 CPUs, have %d", len(all))
	}
	n := max(1, len(all)/2)
	return slices.Clone(all[n:]), slices.Clone(all[:n]), nil
}
