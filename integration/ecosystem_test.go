package integration

// Tests of herd against the tools its users deploy it with: the files of
// examples/deploy (systemd, Kubernetes, Prometheus, Grafana) checked by
// structure and by the real tools where they exist, the systemd unit run
// under an emulated systemd (socket activation, sd_notify, reload, stop),
// JSON logs, and herd-exporter reading a live herd run directory.
// The Prometheus server itself is in prometheus_test.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// deployDir holds the deployment examples, relative to this package.
const deployDir = "../examples/deploy"

// debianPython is Debian's interpreter, with python3-yaml and
// python3-prometheus-client; a python3 earlier in PATH may have neither.
const debianPython = "/usr/bin/python3"

// rawProc is a process started by a test whose stderr lines are kept.
type rawProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error // from Wait, valid once done is closed
}

// startRaw starts cmd, collects its stderr and stops it (SIGQUIT, then
// SIGKILL) at cleanup if it is still running.
func startRaw(t *testing.T, cmd *exec.Cmd) *rawProc {
	t.Helper()
	p := &rawProc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", filepath.Base(cmd.Path), p.log.String())
		}
	})
	return p
}

// waitLog waits until a stderr line contains substr and returns that line.
func (p *rawProc) waitLog(t *testing.T, substr string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %q:\n%s", filepath.Base(p.cmd.Path), p.err, substr, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q in %s:\n%s", filepath.Base(p.cmd.Path), substr, within, p.log.String())
		}
	}
}

// stop sends sig and returns the exit status, failing if the process does
// not exit within the given time.
func (p *rawProc) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of %v", filepath.Base(p.cmd.Path), within, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// logField finds key's value in a text (key=value) or JSON ("key":"value")
// log line.
func logField(line, key string) string {
	re := regexp.MustCompile(`(?:^|[\s{,])"?` + regexp.QuoteMeta(key) + `"?[=:]"?([^\s",}]+)`)
	if m := re.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// helloFlagNames lists the flags of bin/hello from its -h output.
func helloFlagNames(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(helloBin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("hello -h: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) < 5 {
		t.Fatalf("hello -h lists only %d flags:\n%s", len(names), out)
	}
	return names
}

// flagArgs splits "-name=value" and "-name value" arguments into a map,
// failing on a flag hello does not have.
func flagArgs(t *testing.T, args []string, known map[string]bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("argument %q is not a flag", a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val := ""
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, val = name[:j], name[j+1:]
		} else if i+1 < len(args) {
			i++
			val = args[i]
		}
		if !known[name] {
			t.Errorf("flag -%s is not a flag of hello", name)
		}
		out[name] = val
	}
	return out
}

// withOverrides replaces or adds flags in args so that a deployment's
// command line can run on loopback in a test.
func withOverrides(args []string, over map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		inline := strings.Contains(name, "=")
		if inline {
			name = name[:strings.IndexByte(name, '=')]
		}
		if v, ok := over[name]; ok {
			out = append(out, "-"+name+"="+v)
			seen[name] = true
			if !inline {
				i++
			}
			continue
		}
		out = append(out, args[i])
		if !inline && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !seen[k] {
			out = append(out, "-"+k+"="+over[k])
		}
	}
	return out
}

// ---- systemd ----

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
				continue
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the single value of section.key, failing when it is absent.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) == 0 {
		t.Errorf("[%s] %s is missing", section, key)
		return ""
	}
	return v[len(v)-1]
}

// systemdSeconds parses a systemd time span such as "40s", "1min 30s" or "40".
func systemdSeconds(t *testing.T, s string) float64 {
	t.Helper()
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return n
	}
	s = strings.ReplaceAll(s, "min", "m")
	d, err := time.ParseDuration(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d.Seconds()
}

const (
	unitService = "herd-hello.service"
	unitSocket  = "herd-hello.socket"
)

// TestDeploySystemdUnits checks the unit files' keys against what herd
// does, and has systemd-analyze verify them when it is installed.
func TestDeploySystemdUnits(t *testing.T) {
	dir := filepath.Join(deployDir, "systemd")
	svc := parseUnit(t, filepath.Join(dir, unitService))
	sock := parseUnit(t, filepath.Join(dir, unitSocket))

	if got := svc.one(t, "Service", "Type"); got != "notify" {
		t.Errorf("Type=%s, want notify (the master sends READY=1)", got)
	}
	if got := svc.one(t, "Service", "ExecReload"); got != "kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s, want kill -HUP $MAINPID (a rolling restart)", got)
	}
	if got := svc.one(t, "Service", "KillMode"); got != "mixed" {
		t.Errorf("KillMode=%s, want mixed: SIGTERM to the master only, which drains its workers", got)
	}
	if ks := svc["Service"]["KillSignal"]; len(ks) > 0 && ks[0] != "SIGTERM" {
		t.Errorf("KillSignal=%s: herd drains on SIGTERM", ks[0])
	}
	if !strings.Contains(svc.one(t, "Unit", "Requires"), unitSocket) {
		t.Errorf("the service does not require %s", unitSocket)
	}
	if got := sock.one(t, "Socket", "ListenStream"); got == "" {
		t.Error("the socket unit listens on nothing")
	}
	if got := sock["Socket"]["Accept"]; len(got) > 0 && got[0] != "no" {
		t.Errorf("Accept=%s: herd takes the listening socket, not connections", got[0])
	}
	if svc["Install"]["WantedBy"] == nil || sock["Install"]["WantedBy"] == nil {
		t.Error("both units need an [Install] WantedBy")
	}

	execStart := strings.Fields(svc.one(t, "Service", "ExecStart"))
	if len(execStart) == 0 {
		t.Fatal("empty ExecStart")
	}
	flags := flagArgs(t, execStart[1:], helloFlagNames(t))
	grace, err := time.ParseDuration(flags["graceful-timeout"])
	if err != nil {
		t.Fatalf("ExecStart has no valid -graceful-timeout: %v", err)
	}
	if stop := systemdSeconds(t, svc.one(t, "Service", "TimeoutStopSec")); stop <= grace.Seconds() {
		t.Errorf("TimeoutStopSec=%vs is not longer than -graceful-timeout %s: systemd would kill the drain", stop, grace)
	}
	if rd := svc["Service"]["RuntimeDirectory"]; len(rd) == 0 || flags["metrics-dir"] != "/run/"+rd[0] {
		t.Errorf("-metrics-dir %q is not the unit's RuntimeDirectory %v", flags["metrics-dir"], rd)
	}
	if host, _, err := net.SplitHostPort(flags["metrics-bind"]); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("-metrics-bind %q: the admin listener of a host service should stay on loopback", flags["metrics-bind"])
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: checked the keys only")
		return
	}
	// verify insists that ExecStart's binary exists: point it at the
	// hello this test run built, and change nothing else.
	tmp := t.TempDir()
	b, err := os.ReadFile(filepath.Join(dir, unitService))
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.Replace(string(b), "ExecStart="+execStart[0]+" ", "ExecStart="+helloBin+" ", 1)
	if unit == string(b) {
		t.Fatal("could not point ExecStart at the test binary")
	}
	os.WriteFile(filepath.Join(tmp, unitService), []byte(unit), 0o644)
	sb, _ := os.ReadFile(filepath.Join(dir, unitSocket))
	os.WriteFile(filepath.Join(tmp, unitSocket), sb, 0o644)
	out, err := exec.Command(sa, "verify", filepath.Join(tmp, unitSocket), filepath.Join(tmp, unitService)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// notifyListener is the NOTIFY_SOCKET of an emulated systemd.
type notifyListener struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	// A short path: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{path: path, msgs: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// waitFor waits for a datagram holding the line want ("READY=1").
func (n *notifyListener) waitFor(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", want)
			}
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return
				}
			}
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET within %s", want, within)
		}
	}
}

// TestSystemdUnitUnderSocketActivation runs the unit's ExecStart the way
// systemd would with herd-hello.socket: the listening socket inherited as
// fd 3 with LISTEN_PID/LISTEN_FDS, a NOTIFY_SOCKET and a watchdog. It checks
// READY=1 and WATCHDOG=1, serves over the inherited socket, runs the unit's
// ExecReload during traffic (RELOADING=1, then READY=1, no failed request),
// and stops with the unit's KillSignal within TimeoutStopSec.
func TestSystemdUnitUnderSocketActivation(t *testing.T) {
	svc := parseUnit(t, filepath.Join(deployDir, "systemd", unitService))
	execStart := strings.Fields(svc.one(t, "Service", "ExecStart"))
	args := withOverrides(execStart[1:], map[string]string{
		"workers":      "2",
		"metrics-bind": "127.0.0.1:0",
		"metrics-dir":  t.TempDir(),
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	notify := listenNotify(t)

	// sh's $$ is the pid that exec keeps, as LISTEN_PID must be.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@"`, helloBin}, args...)...)
	cmd.Env = append(os.Environ(),
		"LISTEN_FDS=1", "LISTEN_FDNAMES="+unitSocket,
		"NOTIFY_SOCKET="+notify.path,
		"WATCHDOG_USEC=2000000",
	)
	cmd.ExtraFiles = []*os.File{lnFile}
	p := startRaw(t, cmd)
	lnFile.Close()
	ln.Close() // the child holds its own descriptor of the socket

	notify.waitFor(t, "READY=1", 20*time.Second)
	admin := "http://" + logField(p.waitLog(t, "master started", 5*time.Second), "admin")
	client := keepAliveClient()
	sendN(t, client, appURL, 100, 4, func(int) string { return "/hello" })
	notify.waitFor(t, "WATCHDOG=1", 5*time.Second)

	// ExecReload, as systemd runs it, while clients keep sending.
	before := workerPIDs(t, admin)
	stopTraffic := make(chan struct{})
	var failed, sent int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopTraffic:
				return
			default:
			}
			sent++
			resp, err := client.Get(appURL + "/hello")
			if err != nil {
				failed++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed++
			}
		}
	}()
	reload := strings.ReplaceAll(svc.one(t, "Service", "ExecReload"), "$MAINPID", strconv.Itoa(cmd.Process.Pid))
	if out, err := exec.Command("/bin/sh", "-c", reload).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload, err, out)
	}
	notify.waitFor(t, "RELOADING=1", 5*time.Second)
	notify.waitFor(t, "READY=1", 30*time.Second)
	time.Sleep(200 * time.Millisecond) // a little traffic on the new workers
	close(stopTraffic)
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the reload", failed, sent)
	}
	after := workerPIDs(t, admin)
	for pid := range before {
		if after[pid] {
			t.Errorf("worker pid %d survived the reload", pid)
		}
	}

	// Stop as systemd does (KillSignal, KillMode=mixed: the master only).
	grace := systemdSeconds(t, svc.one(t, "Service", "TimeoutStopSec"))
	within := time.Duration(math.Min(grace, 20)) * time.Second
	if code := p.stop(t, syscall.SIGTERM, within); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	notify.waitFor(t, "STOPPING=1", time.Second)
}

// workerPIDs returns the pids of the ready workers listed by /workers.
func workerPIDs(t *testing.T, admin string) map[int]bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(admin + "/workers")
		if err == nil {
			var ws []workerInfo
			err = json.NewDecoder(resp.Body).Decode(&ws)
			resp.Body.Close()
			pids := map[int]bool{}
			all := err == nil && len(ws) > 0
			for _, w := range ws {
				pids[w.PID] = true
				all = all && w.State == "ready"
			}
			if all {
				return pids
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/workers: not all workers ready in 10 s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- Kubernetes ----

// loadYAML parses every document of a YAML file with Debian's python3-yaml
// (no YAML dependency in go.mod) and returns them as JSON values.
func loadYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	const prog = `import json, sys, yaml
with open(sys.argv[1]) as f:
    json.dump([d for d in yaml.safe_load_all(f) if d is not None], sys.stdout)`
	out, err := exec.Command(debianPython, "-c", prog, path).Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = string(ee.Stderr)
		}
		t.Fatalf("parsing %s with python3-yaml (make deps installs it): %v\n%s", path, err, msg)
	}
	var docs []map[string]any
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// dig walks nested maps and lists: dig(v, "spec", "template", 0, "name").
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// TestDeployKubernetes checks the manifests' structure and that their
// numbers agree with herd's flags: grace period, preStop and
// -graceful-timeout; probes, ports and annotations on the admin listener;
// selectors of the Service and the PodMonitor. Then it runs hello with the
// Deployment's arguments (on loopback) to prove they are valid.
func TestDeployKubernetes(t *testing.T) {
	dir := filepath.Join(deployDir, "kubernetes")
	byKind := map[string]map[string]any{}
	for _, f := range []string{"deployment.yaml", "service.yaml", "podmonitor.yaml"} {
		for _, d := range loadYAML(t, filepath.Join(dir, f)) {
			kind := str(d["kind"])
			if kind == "" || str(d["apiVersion"]) == "" || str(dig(d, "metadata", "name")) == "" {
				t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", f)
			}
			byKind[kind] = d
		}
	}
	dep, svc, pm := byKind["Deployment"], byKind["Service"], byKind["PodMonitor"]
	if dep == nil || svc == nil || pm == nil {
		t.Fatalf("want a Deployment, a Service and a PodMonitor, got %v", keys(byKind))
	}
	if str(dep["apiVersion"]) != "apps/v1" || str(svc["apiVersion"]) != "v1" || str(pm["apiVersion"]) != "monitoring.coreos.com/v1" {
		t.Errorf("apiVersions: %v %v %v", dep["apiVersion"], svc["apiVersion"], pm["apiVersion"])
	}

	podLabels, _ := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(sel any) bool {
		m, ok := sel.(map[string]any)
		if !ok || len(m) == 0 {
			return false
		}
		for k, v := range m {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(dig(dep, "spec", "selector", "matchLabels")) {
		t.Error("the Deployment's selector does not match its pod template")
	}
	if !matches(dig(svc, "spec", "selector")) {
		t.Error("the Service's selector does not match the pods")
	}
	if !matches(dig(pm, "spec", "selector", "matchLabels")) {
		t.Error("the PodMonitor's selector does not match the pods")
	}

	c := dig(dep, "spec", "template", "spec", "containers", 0)
	var args []string
	for _, a := range dig(c, "args").([]any) {
		args = append(args, str(a))
	}
	flags := flagArgs(t, args, helloFlagNames(t))

	// Ports: the admin listener on the pod IP, named, and the same in the
	// flags, the probes, the annotations and the PodMonitor.
	ports := map[string]string{} // name -> containerPort
	for _, p := range dig(c, "ports").([]any) {
		ports[str(dig(p, "name"))] = str(dig(p, "containerPort"))
	}
	adminHost, adminPort, err := net.SplitHostPort(flags["metrics-bind"])
	if err != nil || ports["admin"] != adminPort {
		t.Errorf("-metrics-bind %q does not match the admin containerPort %q", flags["metrics-bind"], ports["admin"])
	}
	if ip := net.ParseIP(adminHost); adminHost != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("-metrics-bind %q: the kubelet's probes and Prometheus reach the pod IP, bind 0.0.0.0", flags["metrics-bind"])
	}
	if flags["admin-tls-cert"] == "" || flags["admin-tls-key"] == "" || flags["admin-basic-auth-file"] == "" {
		t.Error("the admin listener on the pod IP has no TLS or no basic auth: open to the whole pod network")
	}
	if _, appPort, err := net.SplitHostPort(flags["bind"]); err != nil || ports["http"] != appPort {
		t.Errorf("-bind %q does not match the http containerPort %q", flags["bind"], ports["http"])
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if p := str(dig(c, probe, "httpGet", "path")); p != "/healthz" {
			t.Errorf("%s path %q, want /healthz on the admin listener", probe, p)
		}
		if p := str(dig(c, probe, "httpGet", "port")); p != "admin" && p != adminPort {
			t.Errorf("%s port %q, want the admin port", probe, p)
		}
	}
	ann, _ := dig(dep, "spec", "template", "metadata", "annotations").(map[string]any)
	if str(ann["prometheus.io/scrape"]) != "true" || str(ann["prometheus.io/port"]) != adminPort || str(ann["prometheus.io/path"]) != "/metrics" {
		t.Errorf("scrape annotations %v do not point at the admin listener :%s/metrics", ann, adminPort)
	}
	if p := str(dig(pm, "spec", "podMetricsEndpoints", 0, "port")); p != "admin" {
		t.Errorf("PodMonitor scrapes port %q, want admin", p)
	}
	svcTargets := map[string]bool{}
	for _, p := range dig(svc, "spec", "ports").([]any) {
		tp := str(dig(p, "targetPort"))
		if ports[tp] == "" && !slicesContains(values(ports), tp) {
			t.Errorf("Service targetPort %q is no port of the container", tp)
		}
		svcTargets[tp] = true
	}
	if !svcTargets["http"] {
		t.Error("the Service does not expose the http port")
	}

	// Termination: preStop sleep + -graceful-timeout must fit in the grace period.
	grace, err := time.ParseDuration(flags["graceful-timeout"])
	if err != nil {
		t.Fatalf("-graceful-timeout in the Deployment's args: %v", err)
	}
	sleep := dig(c, "lifecycle", "preStop", "sleep", "seconds")
	if sleep == nil {
		// exec: ["/bin/sleep", "N"] or ["sleep", "N"]
		cmd, _ := dig(c, "lifecycle", "preStop", "exec", "command").([]any)
		if len(cmd) == 2 && strings.HasSuffix(str(cmd[0]), "sleep") {
			sleep = cmd[1]
		}
	}
	sleepS, err := strconv.ParseFloat(str(sleep), 64)
	if err != nil || sleepS <= 0 {
		t.Errorf("no preStop sleep (got %v): the pod would get SIGTERM while still receiving connections", sleep)
	}
	period, err := strconv.ParseFloat(str(dig(dep, "spec", "template", "spec", "terminationGracePeriodSeconds")), 64)
	if err != nil {
		t.Fatalf("terminationGracePeriodSeconds: %v", err)
	}
	if period < sleepS+grace.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %v < preStop %vs + -graceful-timeout %s: the kubelet would SIGKILL a draining pod", period, sleepS, grace)
	}
	if period > sleepS+grace.Seconds()+30 {
		t.Errorf("terminationGracePeriodSeconds %v is far longer than preStop %vs + -graceful-timeout %s", period, sleepS, grace)
	}

	// The metrics directory is a mounted, memory-backed volume.
	mounted := false
	for _, m := range dig(c, "volumeMounts").([]any) {
		if str(dig(m, "mountPath")) == flags["metrics-dir"] {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("-metrics-dir %q is not a volumeMount of the container", flags["metrics-dir"])
	}

	// The arguments run: the same command line on loopback ports.
	run := withOverrides(args, map[string]string{
		"bind":         "127.0.0.1:0",
		"metrics-bind": "127.0.0.1:0",
		"metrics-dir":  t.TempDir(),
		// The Secrets' files exist only in a pod; on loopback, no TLS or auth.
		"admin-tls-cert": "", "admin-tls-key": "", "admin-basic-auth-file": "",
	})
	cmd := exec.Command(helloBin, run...)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=536870912") // what limits.memory 512Mi resolves to
	p := startRaw(t, cmd)
	admin := "http://" + logField(p.waitLog(t, "master started", 20*time.Second), "admin")
	workerPIDs(t, admin)
	if code := p.stop(t, syscall.SIGTERM, grace+5*time.Second); code != 0 {
		t.Errorf("hello with the Deployment's args: exit status %d after SIGTERM", code)
	}
}

// TestDeployKubernetesScrapeJob checks the annotation-based scrape job: it
// parses, and its relabelling rules turn a pod's annotations into the admin
// listener's address, as Prometheus would apply them (anchored RE2).
func TestDeployKubernetesScrapeJob(t *testing.T) {
	docs := loadYAML(t, filepath.Join(deployDir, "kubernetes", "prometheus-scrape-pods.yaml"))
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	job := dig(docs[0], "scrape_configs", 0)
	if str(dig(job, "kubernetes_sd_configs", 0, "role")) != "pod" {
		t.Error("the job does not discover pods")
	}
	labels := map[string]string{
		"__address__": "10.1.2.3:8080",
		"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
		"__meta_kubernetes_pod_annotation_prometheus_io_port":   "9090",
		"__meta_kubernetes_pod_annotation_prometheus_io_path":   "/metrics",
		"__meta_kubernetes_namespace":                           "default",
		"__meta_kubernetes_pod_name":                            "hello-abc",
		"__metrics_path__":                                      "/",
	}
	kept := true
	for _, r := range dig(job, "relabel_configs").([]any) {
		var src []string
		for _, s := range dig(r, "source_labels").([]any) {
			src = append(src, labels[str(s)])
		}
		val := strings.Join(src, ";")
		reS := str(dig(r, "regex"))
		if reS == "" {
			reS = "(.*)"
		}
		re, err := regexp.Compile("^(?:" + reS + ")$")
		if err != nil {
			t.Fatalf("regex %q: %v", reS, err)
		}
		action := str(dig(r, "action"))
		switch action {
		case "keep":
			kept = kept && re.MatchString(val)
		case "", "replace":
			if m := re.FindStringSubmatchIndex(val); m != nil {
				repl := str(dig(r, "replacement"))
				if repl == "" {
					repl = "$1"
				}
				labels[str(dig(r, "target_label"))] = string(re.ExpandString(nil, repl, val, m))
			}
		default:
			t.Errorf("unexpected relabel action %q", action)
		}
	}
	if !kept {
		t.Error("an annotated pod was dropped")
	}
	if labels["__address__"] != "10.1.2.3:9090" || labels["__metrics_path__"] != "/metrics" {
		t.Errorf("relabelled to %s%s, want 10.1.2.3:9090/metrics", labels["__address__"], labels["__metrics_path__"])
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ---- Prometheus configuration ----

// promtool returns Debian's promtool, failing when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (make deps)")
	}
	return p
}

func TestDeployPrometheusConfig(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "config", filepath.Join(deployDir, "prometheus", "prometheus.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// ---- Grafana ----

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "herd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("herd-dashboard.json: %v", err)
	}
	return d
}

// dashboardExprs returns every PromQL expression of the dashboard with
// Grafana's variables replaced as Grafana would for "All": the expressions
// can then go to Prometheus's query API as they are.
func dashboardExprs(t *testing.T) map[string]string { // panel/refId -> expr
	t.Helper()
	out := map[string]string{}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			e := strings.NewReplacer(
				"$__rate_interval", "10s",
				"$__interval", "1s",
				"$__range", "1m",
				"$job", ".*",
				"$instance", ".*",
			).Replace(tg.Expr)
			if strings.Contains(e, "$") {
				t.Errorf("panel %q: unknown variable left in %q", p.Title, e)
			}
			out[p.Title+"/"+tg.RefID] = e
		}
	}
	return out
}

// TestDeployGrafanaDashboard checks the dashboard's structure and that it
// has the panels the issue asks for; prometheus_test.go evaluates every
// expression against a real Prometheus.
func TestDeployGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Errorf("title %q uid %q schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource, job and instance", vars)
	}

	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
					x, y = g.X+g.W, g.Y+g.H
				}
				used[cell{x, y}] = p.Title
			}
		}
	}

	want := []struct {
		what string
		unit string
		has  []string // every one in one panel's expressions
	}{
		{"request rate by route", "reqps", []string{"rate(http_requests_total", "by (route)"}},
		{"error ratio", "percentunit", []string{`code=~"5.."`, "/", "http_requests_total"}},
		{"p50 latency", "s", []string{"histogram_quantile(0.5,", "http_request_duration_seconds_bucket", "by (le)"}},
		{"p99 latency", "s", []string{"histogram_quantile(0.99,", "http_request_duration_seconds_bucket", "by (le)"}},
		{"workers alive", "", []string{"herd_workers"}},
		{"restarts", "", []string{"herd_worker_restarts_total"}},
		{"each worker's share", "percentunit", []string{"by (instance, worker)", "group_left"}},
	}
	for _, w := range want {
		found := false
		for _, p := range d.Panels {
			var all strings.Builder
			for _, tg := range p.Targets {
				all.WriteString(tg.Expr + "\n")
			}
			ok := true
			for _, s := range w.has {
				ok = ok && strings.Contains(all.String(), s)
			}
			if ok && (w.unit == "" || p.FieldConfig.Defaults.Unit == w.unit) {
				found = true
			}
		}
		if !found {
			t.Errorf("no panel for %s (an expression with %q, unit %q)", w.what, w.has, w.unit)
		}
	}
	if len(dashboardExprs(t)) == 0 {
		t.Error("no expressions")
	}
}

// ---- logs ----

// TestJSONLogs runs a master with -log-format json: every line on stderr,
// the master's and the workers', must be one JSON object as log collectors
// expect, with time, level and msg.
func TestJSONLogs(t *testing.T) {
	p := startRaw(t, exec.Command(helloBin, "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0",
		"-metrics-dir", t.TempDir(), "-workers", "2", "-log-format", "json"))
	line := p.waitLog(t, "master started", 20*time.Second)
	admin := "http://" + logField(line, "admin")
	app := "http://" + logField(line, "bind")
	workerPIDs(t, admin)
	sendN(t, keepAliveClient(), app, 10, 2, func(int) string { return "/hello" })
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	lines := strings.Split(strings.TrimRight(p.log.String(), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON line: %q", l)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line without %q: %s", k, l)
			}
		}
	}
}

// ---- herd-exporter on a herd run directory ----

// flattenFamilies turns families into name{labels} -> value, with
// histograms as their _bucket, _sum and _count samples.
func flattenFamilies(mfs map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	key := func(name string, ls []*dto.LabelPair, extra ...string) string {
		var parts []string
		for _, l := range ls {
			parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
		}
		parts = append(parts, extra...)
		sort.Strings(parts)
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[key(name, m.GetLabel())] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key(name, m.GetLabel())] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key(name, m.GetLabel())] = m.GetUntyped().GetValue()
			case m.Summary != nil:
				out[key(name+"_count", m.GetLabel())] = float64(m.GetSummary().GetSampleCount())
				out[key(name+"_sum", m.GetLabel())] = m.GetSummary().GetSampleSum()
			case m.Histogram != nil:
				h := m.GetHistogram()
				out[key(name+"_count", m.GetLabel())] = float64(h.GetSampleCount())
				out[key(name+"_sum", m.GetLabel())] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(name+"_bucket", m.GetLabel(), "le="+strconv.Quote(fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func scrapeURL(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return mfs
}

// TestExporterReadsHerdRunDirectory points herd-exporter at the run
// directory of a live herd master: what it serves must equal the master's
// own /metrics, value for value (herd's own herd_* families aside).
func TestExporterReadsHerdRunDirectory(t *testing.T) {
	exporter := filepath.Join(t.TempDir(), "herd-exporter")
	if out, err := exec.Command("go", "build", "-o", exporter, "github.com/herdhttp/herd/cmd/herd-exporter").CombinedOutput(); err != nil {
		t.Fatalf("building herd-exporter: %v\n%s", err, out)
	}
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	sendN(t, keepAliveClient(), p.app, 200, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/hello" })

	runDir := ""
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, "master started") {
			runDir = logField(l, "metrics_dir")
		}
	}
	if runDir == "" {
		t.Fatalf("the master's start line names no metrics_dir:\n%s", p.log.String())
	}
	e := startRaw(t, exec.Command(exporter, "-dir", runDir, "-bind", "127.0.0.1:0"))
	addr := logField(e.waitLog(t, "herd-exporter started", 10*time.Second), "bind")

	want := flattenFamilies(p.scrape())
	got := flattenFamilies(scrapeURL(t, "http://"+addr+"/metrics"))
	n := 0
	for k, v := range want {
		if strings.HasPrefix(k, "herd_") {
			continue
		}
		n++
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: exporter %v (present %v), master %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "herd_") {
			t.Errorf("%s: served by the exporter only", k)
		}
	}
	if n < 10 {
		t.Errorf("only %d samples compared", n)
	}
	if v := got[`http_requests_total{code="200",method="GET",route="/users/{id}"}`]; v != 200 {
		t.Errorf("exporter: /users/{id} count %v, want 200", v)
	}
	if code := e.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("herd-exporter exit status %d after SIGTERM", code)
	}
}

// ---- docs ----

// TestMigrationGuideFlagsExist: every herd flag the gunicorn migration
// guide mentions is a flag of bin/hello.
func TestMigrationGuideFlagsExist(t *testing.T) {
	b, err := os.ReadFile("../docs/migrating-from-gunicorn.md")
	if err != nil {
		t.Fatal(err)
	}
	known := helloFlagNames(t)
	exporterFlags := map[string]bool{"dir": true, "bind": true, "log-format": true}
	n := 0
	// herd flags appear in code spans as `-name` or `-name value`.
	for _, m := range regexp.MustCompile("`(herd-exporter |hello |bin/hello )?-([a-z][a-z-]*)[ =`]").FindAllStringSubmatch(string(b), -1) {
		n++
		if m[1] == "herd-exporter " {
			if !exporterFlags[m[2]] {
				t.Errorf("the guide mentions herd-exporter -%s, which does not exist", m[2])
			}
			continue
		}
		if !known[m[2]] && !exporterFlags[m[2]] {
			t.Errorf("the guide mentions -%s, which is no flag of hello", m[2])
		}
	}
	if n < 5 {
		t.Errorf("the guide mentions only %d flags", n)
	}
}

// ---- access log ----

// combinedLineRE is Apache's combined format as log collectors split it.
var combinedLineRE = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$`)

// accessLines reads an access log file, failing on any line that is not in
// the combined format; a missing file has no lines.
func accessLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		if !combinedLineRE.MatchString(l) {
			t.Errorf("%s: not a combined-format line: %q", filepath.Base(path), l)
		}
		out = append(out, l)
	}
	return out
}

// TestAccessLogFileAndRotation runs two workers writing one -access-log
// file: one whole combined-format line per request, none lost or torn.
// Then it rotates the file as logrotate does (rename, SIGUSR1 to the
// master) and checks that the workers move to the new file and that every
// request is still logged exactly once across the two files.
func TestAccessLogFileAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	p := startHello(t, "-workers", "2", "-access-log", path)
	p.waitReady(2)
	client := keepAliveClient()
	sent := 0
	send := func(n int) {
		sendN(t, client, p.app, n, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
		sent += n
	}
	waitLines := func(paths []string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := 0
			for _, p := range paths {
				n += len(accessLines(t, p))
			}
			if n == want {
				return
			}
			if n > want || time.Now().After(deadline) {
				t.Fatalf("%d access log lines, want %d", n, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	send(200)
	waitLines([]string{path}, 200)
	seen := map[string]bool{}
	for _, l := range accessLines(t, path) {
		m := combinedLineRE.FindStringSubmatch(l)
		if m[1] != "127.0.0.1" || m[5] != "200" || m[8] != "Go-http-client/1.1" {
			t.Errorf("unexpected fields in %q", l)
		}
		seen[m[4]] = true
	}
	if len(seen) != 200 {
		t.Errorf("%d distinct request lines, want 200 (raw paths /users/0../users/199)", len(seen))
	}

	// Rotate: rename, then SIGUSR1 to the master, which forwards it.
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// The workers reopen asynchronously: send small batches until one
	// batch lands entirely in the new file (both workers moved).
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := len(accessLines(t, rotated))
		send(20)
		waitLines([]string{path, rotated}, sent)
		if len(accessLines(t, rotated)) == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workers still write to the rotated file 10 s after SIGUSR1")
		}
	}
	send(100)
	waitLines([]string{path, rotated}, sent)
	if n := len(accessLines(t, path)); n < 120 {
		t.Errorf("the new file has %d lines, want at least 120", n)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}
