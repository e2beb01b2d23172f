package integration

// The Kubernetes manifests of examples/deploy: their structure, the numbers
// that must agree with herd's flags, the Deployment's arguments run for real,
// and the annotation-based scrape job's relabelling.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianPython is Debian's interpreter, with python3-yaml and
// python3-prometheus-client; a python3 earlier in PATH may have neither.
const debianPython = "/usr/bin/python3"

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
	t.Parallel()
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
	t.Parallel()
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
