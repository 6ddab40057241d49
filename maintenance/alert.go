package maintenance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"depot/checkpoint"
)

// Alert kinds.
const (
	AlertCleanupFailing = "cleanup_failing"  // a file could not be deleted MaxFailures times
	AlertIntegrity      = "integrity_failed" // a file's bytes, size or presence do not match
	AlertMissingObject  = "missing_object"   // a committed record has no object
	AlertMissedRun      = "missed_run"       // a job has not succeeded within twice its period
	AlertJobFailed      = "job_failed"       // a job run failed
	// AlertAuditTampered: the audit trail does not match its signed
	// checkpoints (audit-verify job, or the checkpoint writer).
	AlertAuditTampered = checkpoint.KindTampered
	// AlertWitnessDown: a checkpoint witness did not take a checkpoint.
	AlertWitnessDown = checkpoint.KindWitnessDown
	// AlertInfected (maintenance/scan.go): malware found by the scanner.
)

// Alert is the JSON body POSTed to the webhook. It carries IDs, counts and
// codes only — never file names or storage keys: AuditSeq points at the
// audit record that holds the details.
type Alert struct {
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`
	Severity string            `json:"severity"` // "critical" or "warning"
	Job      string            `json:"job,omitempty"`
	Node     string            `json:"node,omitempty"`
	Message  string            `json:"message"`
	Code     string            `json:"code,omitempty"`
	Count    int               `json:"count,omitempty"`
	AuditSeq int64             `json:"audit_seq,omitempty"`
	Cohort   string            `json:"cohort,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
}

// AlertKinds lists every alert kind, in the order of the documentation.
var AlertKinds = []string{AlertIntegrity, AlertMissingObject, AlertCleanupFailing, AlertJobFailed, AlertMissedRun, AlertAuditTampered, AlertWitnessDown, AlertInfected}

// Alerter logs alerts and POSTs them to a webhook in its Format, retrying
// with backoff. The same type delivers storage reports (SendReport).
type Alerter struct {
	URL     string       // "" means log only
	Format  string       // FormatJSON (default), FormatSlack, FormatTeams or FormatAlertmanager
	Client  *http.Client // nil means a client with a 10 s timeout
	Log     *slog.Logger
	Retries int           // extra attempts after the first; default 4
	Backoff time.Duration // first retry delay, doubled; default 500ms
}

// Send logs a and delivers it to the webhook. It returns an error only when
// every attempt failed; the alert is logged either way.
func (a *Alerter) Send(ctx context.Context, al Alert) error {
	if al.Time.IsZero() {
		al.Time = time.Now().UTC()
	}
	a.logger().Warn("alert", "kind", al.Kind, "severity", al.Severity, "job", al.Job, "code", al.Code,
		"count", al.Count, "audit_seq", al.AuditSeq, "message", al.Message)
	if a.URL == "" {
		return nil
	}
	body, err := encodeAlert(a.Format, al)
	if err != nil {
		return err
	}
	return a.deliver(ctx, "alert", al.Kind, body)
}

func (a *Alerter) logger() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// deliver POSTs body, retrying with backoff; what names the payload in the
// log ("alert", "report") and kind its kind.
func (a *Alerter) deliver(ctx context.Context, what, kind string, body []byte) error {
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	retries, backoff := a.Retries, a.Backoff
	if retries <= 0 {
		retries = 4
	}
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	var err error
	for attempt := 0; ; attempt++ {
		err = a.post(ctx, client, body)
		if err == nil {
			return nil
		}
		if attempt >= retries {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff << attempt):
		}
	}
	a.logger().Error(what+" delivery failed", "kind", kind, "attempts", retries+1, "err", err.Error())
	return err
}

func (a *Alerter) post(ctx context.Context, client *http.Client, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "depot-alerts/1")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", redactURL(err))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: status %d", resp.StatusCode)
	}
	return nil
}

// redactURL drops the URL from a client error (it may hold a secret token).
func redactURL(err error) error {
	if ue, ok := err.(interface{ Unwrap() error }); ok {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// alert sends al filled with this maintainer's node and counts it in
// depot_alerts_total; delivery errors are logged by the Alerter and
// otherwise ignored (the audit record stands).
func (m *Maintainer) alert(ctx context.Context, al Alert) {
	if ms := m.cfg.Metrics; ms != nil {
		ms.Alerts.WithLabelValues(al.Kind).Inc()
	}
	al.Node = m.cfg.Node
	if al.Time.IsZero() {
		al.Time = m.now()
	}
	if al.Severity == "" {
		al.Severity = "critical"
	}
	_ = m.cfg.Alerts.Send(context.WithoutCancel(ctx), al)
}
