package maintenance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"depot"
)

// Webhook payload formats (DEPOT_ALERT_FORMAT, DEPOT_REPORT_FORMAT). Every
// one is a JSON body POSTed with Content-Type application/json.
const (
	// FormatJSON is depot's own Alert object (or Report object).
	FormatJSON = "json"
	// FormatSlack is {"text": "..."}: accepted by Slack incoming webhooks,
	// Mattermost and Rocket.Chat incoming webhooks, and the Office 365
	// connector ("Incoming Webhook") of Microsoft Teams.
	FormatSlack = "slack"
	// FormatTeams is a message with one Adaptive Card, as a Microsoft Teams
	// Workflows webhook ("When a Teams webhook request is received" → post
	// card in a channel) expects.
	FormatTeams = "teams"
	// FormatAlertmanager is a one-element array of postable alerts for
	// Prometheus Alertmanager's POST /api/v2/alerts (alerts only).
	FormatAlertmanager = "alertmanager"
)

// AlertFormats and ReportFormats list the accepted formats.
var (
	AlertFormats  = []string{FormatJSON, FormatSlack, FormatTeams, FormatAlertmanager}
	ReportFormats = []string{FormatJSON, FormatSlack, FormatTeams}
)

// chatLimit bounds the text of one chat message (Slack truncates at 40,000
// characters, a Teams card must stay under about 28 KB).
const chatLimit = 20000

// encodeAlert renders al in format. Chat and Alertmanager formats leave the
// cohort out: they go to channels shared more widely than the audit trail,
// and audit_seq leads to every detail.
func encodeAlert(format string, al Alert) ([]byte, error) {
	switch format {
	case FormatJSON, "":
		return json.Marshal(al)
	case FormatSlack:
		return json.Marshal(map[string]string{"text": alertText(al)})
	case FormatTeams:
		facts := [][2]string{{"kind", al.Kind}, {"severity", al.Severity}, {"job", al.Job}, {"node", al.Node},
			{"code", al.Code}, {"time", al.Time.UTC().Format(time.RFC3339)}}
		if al.Count != 0 {
			facts = append(facts, [2]string{"count", strconv.Itoa(al.Count)})
		}
		if al.AuditSeq != 0 {
			facts = append(facts, [2]string{"audit record", strconv.FormatInt(al.AuditSeq, 10)})
		}
		for _, k := range sortedKeys(al.Details) {
			facts = append(facts, [2]string{k, al.Details[k]})
		}
		return json.Marshal(teamsCard(fmt.Sprintf("depot %s: %s", strings.ToUpper(al.Severity), al.Message), facts, ""))
	case FormatAlertmanager:
		labels := map[string]string{"alertname": alertName(al.Kind), "severity": al.Severity, "kind": al.Kind, "service": "depot"}
		for k, v := range map[string]string{"depot_job": al.Job, "node": al.Node, "code": al.Code} {
			if v != "" {
				labels[k] = v
			}
		}
		ann := map[string]string{"summary": al.Message}
		if al.AuditSeq != 0 {
			ann["audit_seq"] = strconv.FormatInt(al.AuditSeq, 10)
		}
		if al.Count != 0 {
			ann["count"] = strconv.Itoa(al.Count)
		}
		for k, v := range al.Details {
			ann[k] = v
		}
		return json.Marshal([]map[string]any{{"labels": labels, "annotations": ann, "startsAt": al.Time.UTC().Format(time.RFC3339Nano)}})
	}
	return nil, depot.Errorf(depot.CodeInvalid, "unknown alert format %q (use %s)", format, strings.Join(AlertFormats, ", "))
}

// alertName is the Alertmanager alertname of a kind: the name of the rule
// of deploy/alerts.yml for that kind (missing_object → DepotMissingObject,
// integrity_failed → DepotIntegrityFailure), so that one route matches the
// alert whether Prometheus or depot raised it.
func alertName(kind string) string {
	if kind == AlertIntegrity {
		return "DepotIntegrityFailure"
	}
	var b strings.Builder
	b.WriteString("Depot")
	for _, w := range strings.Split(kind, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func alertText(al Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] depot %s", strings.ToUpper(al.Severity), al.Kind)
	if al.Node != "" {
		fmt.Fprintf(&b, " on %s", al.Node)
	}
	if al.Job != "" {
		fmt.Fprintf(&b, " (job %s)", al.Job)
	}
	fmt.Fprintf(&b, ": %s", al.Message)
	var parts []string
	if al.Code != "" {
		parts = append(parts, "code "+al.Code)
	}
	if al.Count != 0 {
		parts = append(parts, "count "+strconv.Itoa(al.Count))
	}
	if al.AuditSeq != 0 {
		parts = append(parts, "audit record "+strconv.FormatInt(al.AuditSeq, 10)+" (depot audit show)")
	}
	for _, k := range sortedKeys(al.Details) {
		parts = append(parts, k+" "+al.Details[k])
	}
	if len(parts) > 0 {
		b.WriteString(" — " + strings.Join(parts, ", "))
	}
	b.WriteString(" at " + al.Time.UTC().Format(time.RFC3339))
	return b.String()
}

// encodeReport renders a storage report in format; the chat formats carry
// its text rendering (Render "text").
func encodeReport(format string, rep Report) ([]byte, error) {
	if format == FormatJSON || format == "" {
		return json.Marshal(rep)
	}
	var buf bytes.Buffer
	if err := Render(&buf, rep, "text"); err != nil {
		return nil, err
	}
	text := buf.String()
	if len(text) > chatLimit {
		text = text[:chatLimit] + fmt.Sprintf("\n… truncated; the whole report: depot report --id %d\n", rep.ID)
	}
	title := fmt.Sprintf("depot storage report %d: %d files, %s", rep.ID, rep.Total.Files, humanBytes(rep.Total.Bytes))
	switch format {
	case FormatSlack:
		return json.Marshal(map[string]string{"text": title + "\n```\n" + text + "```"})
	case FormatTeams:
		return json.Marshal(teamsCard(title, nil, text))
	}
	return nil, depot.Errorf(depot.CodeInvalid, "unknown report format %q (use %s)", format, strings.Join(ReportFormats, ", "))
}

// teamsCard is a Teams message carrying one Adaptive Card: a bold title,
// facts, and an optional monospaced block.
func teamsCard(title string, facts [][2]string, mono string) map[string]any {
	body := []map[string]any{{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true}}
	if len(facts) > 0 {
		var fs []map[string]string
		for _, f := range facts {
			if f[1] != "" {
				fs = append(fs, map[string]string{"title": f[0], "value": f[1]})
			}
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": fs})
	}
	if mono != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": mono, "fontType": "Monospace", "wrap": true})
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard", "version": "1.4", "body": body,
			},
		}},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SendReport delivers a storage report to the webhook in a's Format
// (FormatJSON, FormatSlack or FormatTeams). Reports hold cohort names,
// counts and sizes, never file names.
func (a *Alerter) SendReport(ctx context.Context, rep Report) error {
	if a == nil || a.URL == "" {
		return nil
	}
	body, err := encodeReport(a.Format, rep)
	if err != nil {
		return err
	}
	return a.deliver(ctx, "report", "report", body)
}

// CheckFormat reports whether format is one of allowed.
func CheckFormat(format string, allowed []string) error {
	for _, f := range allowed {
		if format == f {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q (use %s)", format, strings.Join(allowed, ", "))
}
