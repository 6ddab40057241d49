// Package metrics defines depot's Prometheus metrics on a private registry
// (never the global default one) and serves them on their own listener.
// Labels carry only tiers, routes, methods, status codes and outcomes: never
// file names, keys, cohorts or users (no PHI in metrics). No metric has a
// label named job or instance: Prometheus sets those on every scraped
// series and would rename depot's to exported_job (the maintenance job is
// job_name).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is every metric of one process. Tier is "web" or "services".
type Set struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, method, code
	Duration        *prometheus.HistogramVec // route, method
	BytesIn         prometheus.Counter
	BytesOut        prometheus.Counter
	InFlightUploads prometheus.Gauge
	ChunkRetries    prometheus.Counter       // web: chunks retried on the internal hop
	AuditWrite      prometheus.Histogram     // services: latency of one audit append
	AuditFailures   prometheus.Counter       // services: failed audit appends
	JobRuns         *prometheus.CounterVec   // services: job_name, outcome
	JobDuration     *prometheus.HistogramVec // services: job_name
	StorageBytes    prometheus.Gauge         // services: bytes of committed files
	StorageFiles    prometheus.Gauge         // services: committed files
	Alerts          *prometheus.CounterVec   // services: kind; alerts depot raised itself

	tier string
}

// New returns the metric set of a process of tier, registered on a fresh
// private registry together with the Go and process collectors. Every
// series carries the label tier, the Go and process collectors' too, so that
// a rule such as process_resident_memory_bytes{tier="web"} needs nothing
// from the scrape configuration.
func New(tier string) *Set {
	reg := prometheus.NewRegistry()
	constLabels := prometheus.Labels{"tier": tier}
	prometheus.WrapRegistererWith(constLabels, reg).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "depot", Name: name, Help: help, ConstLabels: constLabels}
	}
	s := &Set{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("http_requests_total", "HTTP requests served.")),
			[]string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "depot", Name: "http_request_duration_seconds",
			Help: "Duration of HTTP requests.", ConstLabels: constLabels, Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
			[]string{"route", "method"}),
		BytesIn:         prometheus.NewCounter(prometheus.CounterOpts(opts("http_request_body_bytes_total", "Request body bytes received."))),
		BytesOut:        prometheus.NewCounter(prometheus.CounterOpts(opts("http_response_body_bytes_total", "Response body bytes sent."))),
		InFlightUploads: prometheus.NewGauge(prometheus.GaugeOpts(opts("uploads_in_flight", "Upload requests in progress."))),
		ChunkRetries:    prometheus.NewCounter(prometheus.CounterOpts(opts("chunk_retries_total", "Chunks retried on the internal hop."))),
		AuditWrite: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "depot", Name: "audit_write_seconds",
			Help: "Latency of one durable audit append.", ConstLabels: constLabels,
			// Round bounds (they are the le labels rules and dashboards
			// read), one of them the DepotAuditSlow threshold.
			Buckets: []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}}),
		AuditFailures: prometheus.NewCounter(prometheus.CounterOpts(opts("audit_write_failures_total", "Audit appends that failed (the operation failed closed)."))),
		JobRuns: prometheus.NewCounterVec(prometheus.CounterOpts(opts("job_runs_total", "Maintenance job runs by outcome.")),
			[]string{"job_name", "outcome"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "depot", Name: "job_duration_seconds",
			Help: "Duration of maintenance job runs.", ConstLabels: constLabels, Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)},
			[]string{"job_name"}),
		StorageBytes: prometheus.NewGauge(prometheus.GaugeOpts(opts("storage_bytes", "Bytes of committed files."))),
		StorageFiles: prometheus.NewGauge(prometheus.GaugeOpts(opts("storage_files", "Committed files."))),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts(opts("alerts_total", "Alerts raised by depot itself (webhook alerts), by kind.")),
			[]string{"kind"}),
		tier: tier,
	}
	reg.MustRegister(s.Requests, s.Duration, s.BytesIn, s.BytesOut, s.InFlightUploads, s.ChunkRetries,
		s.AuditWrite, s.AuditFailures, s.JobRuns, s.JobDuration, s.StorageBytes, s.StorageFiles, s.Alerts)
	return s
}

// Handler serves the registry in the Prometheus text format.
func (s *Set) Handler() http.Handler {
	mux := http.NewServeMux()
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"tier": s.tier}, s.Registry)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}
