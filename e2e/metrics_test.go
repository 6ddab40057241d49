package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMetrics scrapes both tiers' private metrics listeners after an upload
// and checks that the expected series exist and that no file name leaks.
func TestMetrics(t *testing.T) {
	webMetrics, svcMetrics := freeAddr(t), freeAddr(t)
	c := newCluster(t, clusterOpts{
		webEnv:      map[string]string{"DEPOT_METRICS_ADDR": webMetrics},
		servicesEnv: map[string]string{"DEPOT_METRICS_ADDR": svcMetrics},
	})
	data, _ := payloadBytes(3, 9<<20)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/secret-patient-name.csv", strings.NewReader(string(data)), nil), http.StatusCreated)
	expectStatus(t, c.do("GET", "/api/v1/files/c1/secret-patient-name.csv", nil, nil), http.StatusOK)

	scrape := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return string(expectStatus(t, resp, http.StatusOK))
	}
	web, svc := scrape(webMetrics), scrape(svcMetrics)
	for _, want := range []string{
		`depot_http_requests_total{code="201",method="PUT",route="files",tier="web"} 1`,
		`depot_http_request_body_bytes_total{tier="web"}`,
		`depot_uploads_in_flight{tier="web"} 0`,
		`depot_chunk_retries_total{tier="web"} 0`,
	} {
		if !strings.Contains(web, want) {
			t.Errorf("web metrics lack %s in:\n%s", want, grep(web, "depot_"))
		}
	}
	for _, want := range []string{
		`route="/internal/v1/uploads/{id}"`,
		`depot_audit_write_seconds_count{tier="services"}`,
		`depot_audit_write_failures_total{tier="services"} 0`,
	} {
		if !strings.Contains(svc, want) {
			t.Errorf("services metrics lack %s", want)
		}
	}
	for name, text := range map[string]string{"web": web, "services": svc} {
		if strings.Contains(text, "secret-patient-name") || strings.Contains(text, "c1/") {
			t.Errorf("%s metrics contain a file name", name)
		}
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsListenerProbes: each tier's metrics listener answers /healthz
// and /readyz — /healthz also with the profiler on (DEPOT_PPROF=on once
// replaced the whole listener's routes) — and its /readyz is the tier's own
// readiness: web's turns 503 when services is gone.
func TestMetricsListenerProbes(t *testing.T) {
	c := newCluster(t, clusterOpts{
		webEnv:      map[string]string{"DEPOT_METRICS_ADDR": "127.0.0.1:0", "DEPOT_PPROF": "on"},
		servicesEnv: map[string]string{"DEPOT_METRICS_ADDR": "127.0.0.1:0"},
	})
	web, svc := c.web.metricsAddr(), c.services.metricsAddr()
	get := func(addr, path string, want int) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		return string(expectStatus(t, resp, want))
	}
	for _, addr := range []string{web, svc} {
		get(addr, "/healthz", http.StatusOK)
		if body := get(addr, "/readyz", http.StatusOK); !strings.Contains(body, `"ready"`) {
			t.Fatalf("%s /readyz: %s", addr, body)
		}
		get(addr, "/metrics", http.StatusOK)
	}
	get(web, "/debug/pprof/", http.StatusOK)
	get(svc, "/debug/pprof/", http.StatusNotFound) // off by default
	c.services.stop()
	if body := get(web, "/readyz", http.StatusServiceUnavailable); !strings.Contains(body, "services unavailable") {
		t.Fatalf("web /readyz without services: %s", body)
	}
	get(web, "/healthz", http.StatusOK) // alive, not ready
}
