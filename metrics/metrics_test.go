package metrics_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"depot/internal/tlsconf"
	"depot/metrics"
)

func scrape(t *testing.T, s *metrics.Set) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	return rec.Body.String()
}

func value(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no series %s in:\n%s", series, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestEverySeriesHasTier: the Go and process collectors carry the tier
// label too, so that the alert rule on web's memory selects web's series;
// and no series has a label job or instance, which Prometheus would rename
// to exported_job (a rule on {job="verify"} could then never fire).
func TestEverySeriesHasTier(t *testing.T) {
	s := metrics.New("web")
	s.JobRuns.WithLabelValues("verify", "success").Inc()
	s.JobDuration.WithLabelValues("verify").Observe(1)
	s.Alerts.WithLabelValues("missed_run").Inc()
	s.Requests.WithLabelValues("files", "GET", "200").Inc()
	scrape(t, s) // a second handler shares the first one's error counter
	text := scrape(t, s)
	reserved := regexp.MustCompile(`[{,](job|instance)="`)
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, `tier="web"`) {
			t.Errorf("series without tier: %s", line)
		}
		if reserved.MatchString(line) {
			t.Errorf("series with a label Prometheus reserves: %s", line)
		}
	}
	if value(t, text, `process_resident_memory_bytes{tier="web"}`) <= 0 {
		t.Fatal("no resident memory")
	}
}

// TestVolume: the storage volume's size and available bytes are those
// statfs reports for the directory, measured at each scrape.
func TestVolume(t *testing.T) {
	dir := t.TempDir()
	s := metrics.New("services")
	s.WatchVolume(dir)
	text := scrape(t, s)
	size := value(t, text, `depot_storage_volume_size_bytes{tier="services"}`)
	avail := value(t, text, `depot_storage_volume_available_bytes{tier="services"}`)
	st, err := metrics.Volume(dir)
	if err != nil {
		t.Fatal(err)
	}
	if size != float64(st.Size) || avail <= 0 || avail > size {
		t.Fatalf("size %v (statfs %d), available %v", size, st.Size, avail)
	}
	if value(t, text, `depot_storage_volume_errors_total{tier="services"}`) != 0 {
		t.Fatal("errors on a good path")
	}
	gone := metrics.New("services")
	gone.WatchVolume(filepath.Join(dir, "missing"))
	text = scrape(t, gone)
	if strings.Contains(text, "depot_storage_volume_size_bytes{") || value(t, text, `depot_storage_volume_errors_total{tier="services"}`) != 1 {
		t.Fatalf("a missing path: %s", text)
	}
}

// TestCertificateExpiry: every configured certificate file exports the
// seconds until its earliest certificate expires, counted at scrape time.
func TestCertificateExpiry(t *testing.T) {
	dir := t.TempDir()
	if err := tlsconf.WriteDev(dir, []string{"127.0.0.1"}, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	// A bundle: the CA and a leaf; the earliest expiry counts.
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	short := t.TempDir()
	if err := tlsconf.WriteDev(short, []string{"127.0.0.1"}, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	leaf, _ := os.ReadFile(filepath.Join(short, "services.pem"))
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, append(ca, leaf...), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	s := metrics.New("web")
	if err := s.WatchCertificates(map[string]string{
		"DEPOT_TLS_CERT": filepath.Join(dir, "web.pem"), "DEPOT_SERVICES_CA": bundle, "DEPOT_SERVICES_CLIENT_CERT": "",
	}, clock); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, s)
	// WriteDev back-dates NotBefore by an hour; NotAfter = that + lifetime.
	if v := value(t, text, `depot_certificate_expiry_seconds{certificate="DEPOT_TLS_CERT",tier="web"}`); v < 30*86400-3700 || v > 30*86400 {
		t.Fatalf("web certificate: %v s", v)
	}
	if v := value(t, text, `depot_certificate_expiry_seconds{certificate="DEPOT_SERVICES_CA",tier="web"}`); v < 2*86400-3700 || v > 2*86400 {
		t.Fatalf("bundle: %v s, want the leaf's two days", v)
	}
	if strings.Contains(text, "DEPOT_SERVICES_CLIENT_CERT") {
		t.Fatal("an unset certificate exported")
	}
	now = now.Add(31 * 24 * time.Hour)
	if v := value(t, scrape(t, s), `depot_certificate_expiry_seconds{certificate="DEPOT_TLS_CERT",tier="web"}`); v >= 0 {
		t.Fatalf("expired certificate: %v s", v)
	}
	if err := metrics.New("web").WatchCertificates(map[string]string{"DEPOT_TLS_CERT": filepath.Join(dir, "ca-key.pem")}, nil); err == nil {
		t.Fatal("a file without a certificate accepted")
	}
}
