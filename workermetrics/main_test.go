package workermetrics

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// The test binary plays a worker when workerEnv is set: it publishes a
// client_golang registry (jobs_total, queue) into the directory it names and
// obeys one command per line on stdin, answering "ok" on stdout:
//
//	inc N     add N to jobs_total
//	flush     write the snapshot file now
//	block     make every later gather wait until unblock
//	unblock
//	close     close the publisher (a clean stop) and exit
//
// Its interval is an hour: snapshot files are written only at start, on
// flush and on close, so a test knows what each holds.
const workerEnv = "WORKERMETRICS_TEST_WORKER" // "<dir>\t<id>"

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(runTestWorker(spec))
	}
	os.Exit(m.Run())
}

func runTestWorker(spec string) int {
	dir, id, _ := strings.Cut(spec, "\t")
	id, mode, _ := strings.Cut(id, "\t")
	if mode == "bench" || mode == "bench-changing" {
		// A worker of the benchmarks: 1,000 series, the default interval,
		// until stdin closes; bench-changing changes every series before
		// each snapshot.
		reg, change := benchSeries()
		var g metrics.Gatherer = reg
		if mode == "bench-changing" {
			g = metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
				change()
				return reg.Gather()
			})
		}
		p, err := NewPublisher(dir, id, g, PublisherOpts{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		p.Close()
		return 0
	}
	reg := prometheus.NewRegistry()
	jobs := prometheus.NewCounter(prometheus.CounterOpts{Name: "jobs_total", Help: "Jobs."})
	queue := prometheus.NewGauge(prometheus.GaugeOpts{Name: "queue", Help: "Queued."})
	reg.MustRegister(jobs, queue)
	queue.Set(float64(os.Getpid()))
	var mu sync.Mutex // guards blocked
	blocked := make(chan struct{})
	close(blocked)
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mu.Lock()
		b := blocked
		mu.Unlock()
		<-b
		return reg.Gather()
	})
	p, err := NewPublisher(dir, id, g, PublisherOpts{Interval: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "inc":
			n, _ := strconv.Atoi(arg)
			jobs.Add(float64(n))
		case "flush":
			if err := p.Flush(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		case "block":
			mu.Lock()
			blocked = make(chan struct{})
			mu.Unlock()
		case "unblock":
			mu.Lock()
			close(blocked)
			mu.Unlock()
		case "close":
			if err := p.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println("ok")
			return 0
		}
		fmt.Println("ok")
	}
	return 0
}

// child is a test worker process.
type child struct {
	t    testing.TB
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	done chan struct{}
}

// startChild starts a test worker publishing into dir as id and waits until
// it has published its first snapshot. It is killed at cleanup.
func startChild(t testing.TB, dir, id string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+dir+"\t"+id)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, in: in, out: bufio.NewReader(out), done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		c.wait()
	})
	c.expect("ready")
	return c
}

func (c *child) expect(want string) {
	c.t.Helper()
	line, err := c.out.ReadString('\n')
	if strings.TrimSpace(line) != want {
		c.t.Fatalf("test worker said %q (%v), want %q", line, err, want)
	}
}

// do sends a command and waits for its "ok".
func (c *child) do(cmd string) {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		c.t.Fatal(err)
	}
	c.expect("ok")
}

func (c *child) wait() {
	select {
	case <-c.done:
	default:
		c.cmd.Wait()
		close(c.done)
	}
}

// kill sends SIGKILL and reaps the process: it dies without a last
// snapshot.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	c.wait()
}
