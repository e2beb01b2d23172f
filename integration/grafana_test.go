package integration

// The Grafana dashboard of examples/deploy: its structure and panels.
// prometheus_test.go evaluates its expressions against a real Prometheus.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
// has the panels an operator looks at first (rate, errors, latency, workers,
// restarts, each worker's share); prometheus_test.go evaluates every
// expression against a real Prometheus.
func TestDeployGrafanaDashboard(t *testing.T) {
	t.Parallel()
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
