package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// machineInfo describes where the benchmark ran.
type machineInfo struct {
	CPUModel string  `json:"cpu_model"`
	CPUs     int     `json:"cpus"`
	MemGiB   float64 `json:"mem_gib"`
	OS       string  `json:"os"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`  // herd-bench's Go version
	Wrk      string  `json:"wrk"` // wrk's version
}

func (m machineInfo) String() string {
	s := fmt.Sprintf("%s, %d CPUs, %.0f GiB", m.CPUModel, m.CPUs, m.MemGiB)
	if m.OS != "" {
		s += ", " + m.OS
	}
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	return s
}

func (m machineInfo) tools() string {
	return fmt.Sprintf("%s, wrk %s", m.Go, m.Wrk)
}

// readMachine gathers machineInfo; missing pieces are left empty.
func readMachine(wrk string) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPUModel: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemGiB = memTotalGiB(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		m.OS = osRelease(b)
	}
	if out, err := exec.Command(wrk, "-v").CombinedOutput(); len(out) > 0 {
		_ = err // wrk -v exits with status 1 after printing its version
		m.Wrk = wrkVersion(out)
	}
	return m
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotalGiB(meminfo []byte) float64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / (1 << 20)
		}
	}
	return 0
}

func osRelease(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// wrkVersion reads "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." -> "debian/4.1.0-3+b2".
func wrkVersion(out []byte) string {
	f := strings.Fields(firstLine(string(out)))
	if len(f) >= 2 && f[0] == "wrk" {
		return f[1]
	}
	return "unknown"
}
