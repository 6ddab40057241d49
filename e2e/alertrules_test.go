package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// scrapeJobs maps the scrape job of deploy/prometheus.yml to its tier.
var scrapeJobs = map[string]string{"depot-web": "web", "depot-services": "services"}

// TestAlertRulesAgainstExposition runs a real web and services process, with
// TLS on every listener and local storage, scrapes both metrics listeners
// (after a real 503 from web: services stopped) and checks deploy/ against
// what they export:
//   - no series has a label Prometheus owns (job, instance);
//   - every metric an alert rule or a Grafana panel reads is exported;
//   - every input series of deploy/alerts_test.yml is a real series
//     (plus the job and instance labels a scrape adds);
//   - promtool accepts deploy/prometheus.yml and deploy/alerts.yml, and
//     `promtool test rules deploy/alerts_test.yml` passes.
func TestAlertRulesAgainstExposition(t *testing.T) {
	promtool := opsTool(t, "promtool")
	certs := t.TempDir()
	depotCLI(t, nil, "certs", "dev", "--out", certs)
	f := func(name string) string { return filepath.Join(certs, name) }
	c := newCluster(t, clusterOpts{
		servicesEnv: map[string]string{
			"DEPOT_METRICS_ADDR":      "127.0.0.1:0",
			"DEPOT_INTERNAL_TLS_CERT": f("services.pem"), "DEPOT_INTERNAL_TLS_KEY": f("services-key.pem"),
			"DEPOT_INTERNAL_CLIENT_CA": f("ca.pem"),
		},
		servicesURL: func(addr string) string { return "https://" + addr },
		webEnv: map[string]string{
			"DEPOT_METRICS_ADDR": "127.0.0.1:0",
			"DEPOT_SERVICES_CA":  f("ca.pem"), "DEPOT_SERVICES_CLIENT_CERT": f("web-client.pem"),
			"DEPOT_SERVICES_CLIENT_KEY": f("web-client-key.pem"),
			"DEPOT_TLS_CERT":            f("web.pem"), "DEPOT_TLS_KEY": f("web-key.pem"),
		},
	})
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method string, body []byte, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+c.web.addr+"/api/v1/files/c1/r.csv", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, resp, want)
	}
	do("PUT", []byte("a,b\n1,2\n"), http.StatusCreated)
	do("GET", nil, http.StatusOK)
	scraped := map[string]exposition{"services": scrapeExposition(t, c.services.metricsAddr())}
	c.services.stop()
	do("GET", nil, http.StatusServiceUnavailable)
	scraped["web"] = scrapeExposition(t, c.web.metricsAddr())

	exported := map[string]bool{"up": true} // up is Prometheus' own
	for tier, e := range scraped {
		for k := range e {
			if regexp.MustCompile(`[{,](job|instance)="`).MatchString(k) {
				t.Errorf("%s exports %s: Prometheus would rename the label to exported_…", tier, k)
			}
		}
		for n := range e.names() {
			exported[n] = true
		}
	}

	// Metrics read by the rules and the dashboard.
	rules, err := os.ReadFile("../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	exprs := ruleExprs(string(rules))
	if len(exprs) < 20 {
		t.Fatalf("only %d rule expressions found in deploy/alerts.yml", len(exprs))
	}
	for _, expr := range exprs {
		for _, m := range promqlMetrics(expr) {
			if !exported[strings.TrimSuffix(m, "_bucket")] && !exported[m] {
				t.Errorf("alerts.yml reads %s, which neither tier exports (%s)", m, expr)
			}
		}
	}
	t.Run("dashboard", func(t *testing.T) {
		raw, err := os.ReadFile("../deploy/grafana-dashboard.json")
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Title  string
			UID    string
			Panels []struct {
				Type    string
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("deploy/grafana-dashboard.json is not valid JSON: %v", err)
		}
		queries := 0
		for _, p := range dash.Panels {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				ms := promqlMetrics(tg.Expr)
				if len(ms) == 0 {
					t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
				}
				for _, m := range ms {
					if !exported[m] {
						t.Errorf("panel %q reads %s, which neither tier exports", p.Title, m)
					}
				}
			}
		}
		if dash.UID == "" || queries < 20 {
			t.Fatalf("dashboard uid %q, %d queries", dash.UID, queries)
		}
	})

	// Input series of the promtool tests.
	tests, err := os.ReadFile("../deploy/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	inputs := regexp.MustCompile(`(?m)^\s*- series: '([^']+)'`).FindAllStringSubmatch(string(tests), -1)
	if len(inputs) < 30 {
		t.Fatalf("only %d input series in deploy/alerts_test.yml", len(inputs))
	}
	for _, in := range inputs {
		s, _, err := parseSeriesLine(in[1])
		if err != nil {
			t.Fatalf("%s: %v", in[1], err)
		}
		tier, ok := scrapeJobs[s.labels["job"]]
		if !ok || s.labels["instance"] == "" {
			t.Errorf("%s: job must be depot-web or depot-services, with an instance, as deploy/prometheus.yml scrapes", in[1])
			continue
		}
		if s.name == "up" {
			continue
		}
		delete(s.labels, "job")
		delete(s.labels, "instance")
		if _, ok := scraped[tier][s.key()]; !ok {
			t.Errorf("alerts_test.yml feeds %s, which the %s tier does not export; it exports:\n%s", s.key(), tier, similar(scraped[tier], s.name))
		}
	}
	if t.Failed() {
		return
	}

	for _, args := range [][]string{
		{"check", "config", "../deploy/prometheus.yml"},
		{"test", "rules", "../deploy/alerts_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// ruleExprs returns the expr of every rule of a Prometheus rule file, on one
// line or folded (expr: >-).
func ruleExprs(yml string) []string {
	var out []string
	lines := strings.Split(yml, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		v, ok := strings.CutPrefix(l, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v == ">-" || v == ">" || v == "|" || v == "|-" {
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			v = ""
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) == "" || len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				v += " " + strings.TrimSpace(next)
				i++
			}
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

// similar lists e's series named name, for a helpful failure message.
func similar(e exposition, name string) string {
	var out []string
	for k := range e {
		if strings.HasPrefix(k, name+"{") {
			out = append(out, "  "+k)
		}
	}
	return strings.Join(out, "\n")
}
