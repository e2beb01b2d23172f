package server

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herdhttp/herd/prefork"
)

// The status page: GET / on the admin listener, one self-contained HTML
// page for people (no script, no font, no image, no stylesheet from
// anywhere: it works on a host without a network, and its
// Content-Security-Policy forbids loading anything). It shows the workers
// table, each slot's requests per second over the last five minutes as an
// inline SVG chart, the recent worker exits with their reasons and the
// last reload's outcome, and reloads itself every statusRefresh. It is
// behind the admin listener's TLS and basic auth, as /metrics is.

//go:embed status.html
var statusHTML string

// statusRefresh is how often the page reloads itself.
const statusRefresh = 5 * time.Second

// statusPage serves the status page and, with -admin-pprof, the workers'
// profiles (pprof.go), and samples the workers for the page while the run
// lasts.
type statusPage struct {
	tmpl    *template.Template
	workers func() []prefork.WorkerInfo
	hist    *history
	single  bool   // Workers == 0: the one process is slot 0
	addr    string // the application's address
	host    string
	pid     int
	started time.Time
	pprof   http.Handler // nil without -admin-pprof
	stop    func()
}

// historian is a backend that keeps a history of its own (exits and
// reloads come from prefork's hooks).
type historian interface{ history() *history }

// newStatusPage prepares the status page of a run over b whose run
// directory is dir, and starts sampling b's workers when the admin
// listener is on. Its error is a configuration error. close stops the
// sampling.
func newStatusPage(cfg Config, dir string, b backend, log *slog.Logger) (*statusPage, error) {
	hist := newHistory()
	if h, ok := b.(historian); ok {
		hist = h.history()
	}
	addr := ""
	if as := b.addrs(); len(as) > 0 {
		addr = addrString(as[0])
	}
	return startStatusPage(cfg, dir, b.workers, addr, hist, log)
}

// startStatusPage is newStatusPage over the workers that workers()
// describes, serving the application at addr, recorded in hist.
func startStatusPage(cfg Config, dir string, workers func() []prefork.WorkerInfo, addr string, hist *history, log *slog.Logger) (*statusPage, error) {
	tmpl, err := template.New("status").Parse(statusHTML)
	if err != nil {
		return nil, fmt.Errorf("server: status page template: %w", err)
	}
	host, _ := os.Hostname()
	st := &statusPage{
		tmpl: tmpl, workers: workers, hist: hist, single: cfg.Workers == 0, addr: addr,
		host: host, pid: os.Getpid(), started: time.Now(), stop: func() {},
	}
	if cfg.AdminPprof {
		if st.pprof, err = newPprofProxy(dir, workers, st.single, log); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsBind != "off" {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			hist.run(ctx, workers)
		}()
		st.stop = func() { cancel(); <-done }
	}
	return st, nil
}

// close stops the sampling and waits for it; it may be called twice.
func (st *statusPage) close() {
	st.stop()
	st.stop = func() {}
}

// routes adds the status page and the profiles to the admin mux; protect
// is the admin listener's authentication.
func (st *statusPage) routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /{$}", protect(st))
	if st.pprof != nil {
		mux.Handle("GET "+pprofRoute+"{slot}/{rest...}", protect(st.pprof))
	}
}

func (st *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := st.tmpl.Execute(&buf, st.view(time.Now())); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Write(buf.Bytes())
}

// statusView is what the template shows: every value formatted, so that
// the template only places (and html/template escapes) them.
type statusView struct {
	Host, Mode, Addr, Generated, Uptime string
	PID, Ready, Live                    int
	RefreshSeconds                      int
	Rate, Window                        string
	Total                               chartView
	Workers                             []workerRow
	Exits                               []exitRow
	Reload                              reloadView
	Pprof                               bool
}

type workerRow struct {
	Slot                         int
	ID                           string
	PID                          int
	State, Age, Requests         string
	InFlight, Memory, CPU, Queue string
	QueueTitle                   string // the queue's backlog, for the cell's tooltip
	Rate                         string
	ChartRows                    int // the slot's chart spans this many rows here; 0: none in this row
	Chart                        chartView
	Profiles                     string // link to the worker's profiles, or ""
	StateClass, StateDescription string
}

type exitRow struct {
	Ago, At, Ran, Reason, How string
	Slot, PID                 int
	ID                        string
	Planned                   bool
}

type reloadView struct {
	Class, Text, Detail, At string
}

func (st *statusPage) view(now time.Time) statusView {
	ws := st.workers()
	rates := st.hist.rates()
	v := statusView{
		Host: st.host, Addr: st.addr, PID: st.pid, Live: len(ws),
		Generated:      now.Format("15:04:05 MST"),
		Uptime:         fmtAge(now.Sub(st.started)),
		RefreshSeconds: int(statusRefresh / time.Second),
		Window:         strconv.Itoa(int((time.Duration(sampleKeep) * sampleEvery).Minutes())) + " min",
		Pprof:          st.pprof != nil,
	}
	v.Mode = strconv.Itoa(len(slotsOf(ws))) + " worker slots"
	if st.single {
		v.Mode = "one process (-workers 0)"
	}

	// One scale for every slot's chart, so that they compare at a glance.
	peak := 0.0
	for _, ps := range rates {
		for _, p := range ps {
			peak = max(peak, p.perSec)
		}
	}
	total := totalRate(rates)
	v.Total = newChart(total, now, 720, 140, maxRateScale(total))
	if len(total) > 0 {
		v.Rate = fmtRate(total[len(total)-1].perSec)
	} else {
		v.Rate = "-"
	}
	scale := niceCeil(peak)
	for i, w := range ws {
		if w.State == prefork.StateReady {
			v.Ready++
		}
		row := workerRow{
			Slot: w.Slot, ID: w.ID, PID: w.PID, State: string(w.State),
			StateClass: string(w.State), StateDescription: stateDescription(w.State),
			Age:      fmtAge(now.Sub(w.Started)),
			Requests: fmtCount(w.Requests),
			InFlight: "-", Memory: "-", CPU: "-", Queue: "-", Rate: "-",
		}
		if w.State != prefork.StateStarting { // a starting worker has said nothing yet
			row.InFlight = strconv.Itoa(w.InFlight)
		}
		if w.RSS > 0 {
			row.Memory = fmtBytes(w.RSS)
		}
		if w.CPUSeconds > 0 {
			row.CPU = fmtCPU(w.CPUSeconds)
		}
		if w.QueueLimit > 0 { // read from the kernel
			row.Queue = strconv.Itoa(w.QueueLength)
			row.QueueTitle = fmt.Sprintf("%d connections waiting to be accepted; backlog %d", w.QueueLength, w.QueueLimit)
		}
		if st.pprof != nil && w.State == prefork.StateReady { // the worker the link reaches
			row.Profiles = strings.TrimPrefix(pprofRoute, "/") + strconv.Itoa(w.Slot) + "/"
		}
		if i == 0 || ws[i-1].Slot != w.Slot {
			row.ChartRows = 1
			for j := i + 1; j < len(ws) && ws[j].Slot == w.Slot; j++ {
				row.ChartRows++
			}
			ps := rates[w.Slot]
			row.Chart = newChart(ps, now, 180, 36, scale)
			if len(ps) > 0 {
				row.Rate = fmtRate(ps[len(ps)-1].perSec)
			}
		}
		v.Workers = append(v.Workers, row)
	}
	for _, e := range st.hist.recentExits() {
		v.Exits = append(v.Exits, exitRow{
			Ago: fmtAge(now.Sub(e.at)) + " ago", At: e.at.Format(time.RFC3339),
			Slot: e.Slot, ID: e.ID, PID: e.PID, Reason: string(e.Reason), Planned: e.Reason.Planned(),
			How: exitHow(e.WorkerExit), Ran: fmtAge(e.Ran),
		})
	}
	v.Reload = reloadViewOf(st.hist.lastReload(), st.single, now)
	return v
}

func slotsOf(ws []prefork.WorkerInfo) map[int]bool {
	s := map[int]bool{}
	for _, w := range ws {
		s[w.Slot] = true
	}
	return s
}

func stateDescription(s prefork.WorkerState) string {
	switch s {
	case prefork.StateStarting:
		return "started, not serving yet"
	case prefork.StateReady:
		return "serving"
	case prefork.StateStopping:
		return "told to stop: finishing its requests"
	case prefork.StateKilled:
		return "sent SIGKILL, not reaped yet"
	}
	return ""
}

func exitHow(e prefork.WorkerExit) string {
	s := "exit status " + strconv.Itoa(e.Status)
	if e.Signal != 0 {
		s = "signal: " + e.Signal.String()
	}
	if e.Killed {
		s += " (SIGKILL from the master)"
	}
	return s
}

func reloadViewOf(r reloadOutcome, single bool, now time.Time) reloadView {
	switch {
	case r.Started.IsZero() && single:
		return reloadView{Class: "none", Text: "no reload (one process: -workers 0 does not reload)"}
	case r.Started.IsZero():
		return reloadView{Class: "none", Text: "no reload yet"}
	case r.Ended.IsZero():
		return reloadView{Class: "pending", Text: "in progress", At: "since " + r.Started.Format("15:04:05") + " (" + fmtAge(now.Sub(r.Started)) + ")"}
	}
	class := "bad"
	if r.Result == "ok" {
		class = "ok"
	}
	return reloadView{Class: class, Text: r.Result, Detail: r.Detail,
		At: r.Ended.Format("15:04:05") + ", " + fmtAge(now.Sub(r.Ended)) + " ago, took " + fmtAge(r.Ended.Sub(r.Started))}
}

// totalRate adds the slots' rates of each sample time.
func totalRate(rates map[int][]ratePoint) []ratePoint {
	sum := map[time.Time]float64{}
	for _, ps := range rates {
		for _, p := range ps {
			sum[p.at] += p.perSec
		}
	}
	out := make([]ratePoint, 0, len(sum))
	for at, r := range sum {
		out = append(out, ratePoint{at: at, perSec: r})
	}
	slices.SortFunc(out, func(a, b ratePoint) int { return a.at.Compare(b.at) })
	return out
}

func maxRateScale(ps []ratePoint) float64 {
	m := 0.0
	for _, p := range ps {
		m = max(m, p.perSec)
	}
	return niceCeil(m)
}

// chartView is one SVG chart of requests per second: a line and the area
// under it, in a W×H box whose top is Max.
type chartView struct {
	W, H       int
	Line, Area string // SVG points; "" when there are fewer than two
	Max, Half  string // the labels of the top and middle grid lines
	HalfY      int
	LastX      string // where the last point is, for its dot
	LastY      string
}

// newChart draws ps (oldest first) over the sample window ending at now,
// scaled so that top is the chart's height.
func newChart(ps []ratePoint, now time.Time, w, h int, top float64) chartView {
	c := chartView{W: w, H: h, Max: fmtRate(top), Half: fmtRate(top / 2), HalfY: h / 2}
	window := time.Duration(sampleKeep) * sampleEvery
	var pts []string
	var lastX, lastY float64
	for _, p := range ps {
		age := now.Sub(p.at)
		if age > window || age < 0 {
			continue
		}
		lastX = float64(w) * (1 - float64(age)/float64(window))
		lastY = float64(h) - 2 - (float64(h)-4)*min(p.perSec/top, 1)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", lastX, lastY))
	}
	if len(pts) < 2 {
		return c
	}
	c.Line = strings.Join(pts, " ")
	first := pts[0][:strings.IndexByte(pts[0], ',')]
	c.Area = fmt.Sprintf("%s,%d %s %.1f,%d", first, h, c.Line, lastX, h)
	c.LastX, c.LastY = fmt.Sprintf("%.1f", lastX), fmt.Sprintf("%.1f", lastY)
	return c
}

// niceCeil rounds r up to 1, 2 or 5 times a power of ten (at least 1), a
// chart's top.
func niceCeil(r float64) float64 {
	n := 1.0
	for n < r {
		switch {
		case r <= n*2:
			return n * 2
		case r <= n*5:
			return n * 5
		}
		n *= 10
	}
	return n
}

func fmtRate(r float64) string {
	switch {
	case r >= 100 || r == math.Trunc(r):
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// fmtAge is d for people: "42s", "3m 05s", "2h 07m", "3d 04h".
func fmtAge(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	s := int(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %02dh", s/86400, s%86400/3600)
}

func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + suffix
}

// fmtCPU is a CPU time in seconds for people: "0.42 s", "12.3 s", then
// as fmtAge: "3m 05s".
func fmtCPU(sec float64) string {
	switch {
	case sec < 10:
		return strconv.FormatFloat(sec, 'f', 2, 64) + " s"
	case sec < 60:
		return strconv.FormatFloat(sec, 'f', 1, 64) + " s"
	}
	return fmtAge(time.Duration(sec * float64(time.Second)))
}

// fmtCount groups digits by three: 1,234,567.
func fmtCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
