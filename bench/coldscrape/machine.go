package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What the machine does besides the measured processes, and what a page fault costs on it.

// userHZ is the unit of the CPU times in /proc/stat (USER_HZ, which Linux fixes at 100 on
// every architecture Go supports).
const userHZ = 100

// cpuSnapshot is the CPU time the machine, this process and its waited-for children had
// used at one moment, and when.
type cpuSnapshot struct {
	at       time.Time
	machine  time.Duration // every CPU's busy time since boot; -1 when unknown
	self     time.Duration
	children time.Duration
}

// otherCPU is the CPU time other processes than this one and its children used between
// two snapshots, and the wall time between them.
type otherCPU struct {
	cpu, wall time.Duration
	known     bool // /proc/stat could be read both times
}

// takeCPU takes a cpuSnapshot now.
func takeCPU() cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), machine: machineBusy()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(cpuNs(&ru))
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		s.children = time.Duration(cpuNs(&ru))
	}
	return s
}

// otherSince is the CPU time other processes used from before to s (never below zero:
// /proc/stat counts in ticks of 10 ms).
func (s cpuSnapshot) otherSince(before cpuSnapshot) otherCPU {
	if s.machine < 0 || before.machine < 0 {
		return otherCPU{}
	}
	ours := s.self - before.self + s.children - before.children
	return otherCPU{cpu: max(0, s.machine-before.machine-ours), wall: s.at.Sub(before.at), known: true}
}

// machineBusy returns the CPU time all CPUs spent busy since boot (the first line of
// /proc/stat: user, nice, system, irq, softirq, steal; guest time is part of user), or -1
// when it cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// faultCost measures what one page fault of fresh anonymous memory costs here: it maps
// faultBytes private anonymous memory, writes one byte per page and divides the time taken
// by the minor faults counted, faultRounds times. It returns the median cost and the
// faults of one round (the median).
func faultCost() (time.Duration, int64, error) {
	page := os.Getpagesize()
	costs := make([]float64, 0, faultRounds)
	counts := make([]float64, 0, faultRounds)
	for range faultRounds {
		mem, err := syscall.Mmap(-1, 0, faultBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			return 0, 0, fmt.Errorf("mmap: %w", err)
		}
		var r0, r1 syscall.Rusage
		err0 := syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		start := time.Now()
		for i := 0; i < len(mem); i += page {
			mem[i] = 1
		}
		elapsed := time.Since(start)
		err1 := syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		if err := errors.Join(err0, err1); err != nil {
			syscall.Munmap(mem)
			return 0, 0, fmt.Errorf("getrusage: %w", err)
		}
		if err := syscall.Munmap(mem); err != nil {
			return 0, 0, fmt.Errorf("munmap: %w", err)
		}
		faults := int64(r1.Minflt - r0.Minflt)
		if faults <= 0 {
			return 0, 0, errors.New("touching fresh memory counted no page faults")
		}
		costs = append(costs, float64(elapsed)/float64(faults))
		counts = append(counts, float64(faults))
	}
	cost, _, _ := summary(costs)
	n, _, _ := summary(counts)
	return time.Duration(cost), int64(n), nil
}
