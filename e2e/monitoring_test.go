package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// opsTool returns the path of a tool installed by scripts/install-ops-tools.sh
// (promtool, nginx, prometheus-alertmanager), or skips the test; in CI
// (CI=true) a missing tool fails it.
func opsTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin/", "/usr/bin/"} {
			if _, err := os.Stat(dir + name); err == nil {
				return dir + name
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (scripts/install-ops-tools.sh installs it)", names[0])
	}
	t.Skipf("%s not installed (scripts/install-ops-tools.sh installs it)", names[0])
	return ""
}

// metricsAddr returns the address of p's metrics listener (DEPOT_METRICS_ADDR
// 127.0.0.1:0), from its "metrics listening" log line, written before the
// "listening" line start waits for.
func (p *proc) metricsAddr() string {
	p.t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.logs()))
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "metrics listening" {
			return rec.Addr
		}
	}
	p.t.Fatalf("no metrics listener in the log:\n%s", p.logs())
	return ""
}

// series is one exposed time series: its name and labels.
type series struct {
	name   string
	labels map[string]string
}

// key is the series in PromQL selector form with sorted labels.
func (s series) key() string {
	names := make([]string, 0, len(s.labels))
	for k := range s.labels {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%q", k, s.labels[k])
	}
	return s.name + "{" + strings.Join(parts, ",") + "}"
}

// exposition is the set of series of one scrape, by key, and their values.
type exposition map[string]float64

// scrapeExposition GETs addr's /metrics and parses the text format.
func scrapeExposition(t *testing.T, addr string) exposition {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := expectStatus(t, resp, http.StatusOK)
	out := exposition{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, v, err := parseSeriesLine(line)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[s.key()] = v
	}
	return out
}

// names returns the metric names of e.
func (e exposition) names() map[string]bool {
	out := map[string]bool{}
	for k := range e {
		out[k[:strings.IndexByte(k, '{')]] = true
	}
	return out
}

// parseSeriesLine parses `name{a="x",b="y"} value` (or a selector without
// a value): label values may hold escaped quotes and backslashes.
func parseSeriesLine(line string) (series, float64, error) {
	s := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		s.name = line
		return s, 0, nil
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return s, 0, fmt.Errorf("bad label in %q", rest)
			}
			name := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						val.WriteByte('\n')
						continue
					}
				}
				val.WriteByte(rest[j])
			}
			if j == len(rest) {
				return s, 0, fmt.Errorf("unterminated label value")
			}
			s.labels[name] = val.String()
			rest = rest[j+1:]
		}
	}
	var v float64
	if f := strings.Fields(rest); len(f) > 0 {
		if _, err := fmt.Sscan(f[0], &v); err != nil && f[0] != "NaN" && !strings.HasSuffix(f[0], "Inf") {
			return s, 0, err
		}
	}
	return s, v, nil
}

var (
	quoted      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricToken = regexp.MustCompile(`\b(?:depot_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+|up)\b`)
)

// promqlMetrics returns the metric names a PromQL expression reads (depot's,
// the Go and process collectors', and up), label values aside.
func promqlMetrics(expr string) []string {
	expr = quoted.ReplaceAllString(expr, `""`)
	return metricToken.FindAllString(expr, -1)
}
