package maintenance

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"depot"
	"depot/servicedb"
)

// Report is a storage report: per cohort and in total. It holds counts,
// sizes and times only. Reports are kept in maint_reports as JSON.
type Report struct {
	ID                int64         `json:"id"`
	Generated         time.Time     `json:"generated"`
	PreviousID        int64         `json:"previous_id,omitempty"`
	PreviousGenerated *time.Time    `json:"previous_generated,omitempty"`
	Cohorts           []CohortStats `json:"cohorts"`
	Total             CohortStats   `json:"total"`
	Jobs              []JobStatus   `json:"jobs"`
}

// CohortStats are the figures of one cohort (or of all, in Report.Total).
// Files and Bytes count every kept version (the storage the cohort holds);
// the Current, Older and Deleted figures split them.
type CohortStats struct {
	Cohort         string `json:"cohort"`
	Files          int64  `json:"files"`
	Bytes          int64  `json:"bytes"`
	PermanentFiles int64  `json:"permanent_files"`
	PermanentBytes int64  `json:"permanent_bytes"`
	TemporaryFiles int64  `json:"temporary_files"`
	TemporaryBytes int64  `json:"temporary_bytes"`
	// Current versions of visible files, older versions of visible files,
	// and versions of deleted files kept until their retention ends.
	CurrentFiles    int64 `json:"current_files"`
	CurrentBytes    int64 `json:"current_bytes"`
	OlderVersions   int64 `json:"older_versions"`
	OlderBytes      int64 `json:"older_bytes"`
	DeletedVersions int64 `json:"deleted_versions"`
	DeletedBytes    int64 `json:"deleted_bytes"`
	// Open upload sessions and the bytes they hold so far.
	OpenUploads     int64 `json:"open_uploads"`
	OpenUploadBytes int64 `json:"open_upload_bytes"`
	// Downloads since the previous report (or 24 h).
	Downloads int64 `json:"downloads"`
	// Growth since the previous report (absent in the first report).
	GrowthFiles *int64 `json:"growth_files,omitempty"`
	GrowthBytes *int64 `json:"growth_bytes,omitempty"`
	// Cleanups: pending (scheduled, not yet due or due within one cleanup
	// period) and overdue (due for longer than one cleanup period).
	PendingCleanups int64 `json:"pending_cleanups"`
	OverdueCleanups int64 `json:"overdue_cleanups"`
	// Failures: files whose cleanup is failing now, and integrity and
	// cleanup failures audited since the previous report (or 24 h).
	CleanupFailing    int64 `json:"cleanup_failing"`
	CleanupFailures   int64 `json:"cleanup_failures"`
	IntegrityFailures int64 `json:"integrity_failures"`
	// Verification: the most recent and the oldest successful check of any
	// file, and the number of files never verified.
	LastVerified   *time.Time `json:"last_verified,omitempty"`
	OldestVerified *time.Time `json:"oldest_verified,omitempty"`
	Unverified     int64      `json:"unverified"`
}

// JobStatus is the state of one job when the report was made.
type JobStatus struct {
	Job         string     `json:"job"`
	Interval    string     `json:"interval"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	Failures    int        `json:"failures"` // failed runs since the previous report (or 24 h)
	Missed      bool       `json:"missed"`   // no success within twice the interval
}

// Report runs the report job once: it computes, keeps and audits a
// storage report and returns it.
func (m *Maintainer) Report(ctx context.Context, trigger string) (Report, error) {
	var rep Report
	err := m.run(ctx, JobReport, trigger, func(ctx context.Context) (any, error) {
		var err error
		rep, err = m.buildReport(ctx)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(rep)
		if err != nil {
			return nil, err
		}
		if rep.ID, err = m.cfg.DB.SaveReport(ctx, rep.Generated, string(body)); err != nil {
			return nil, err
		}
		if ms := m.cfg.Metrics; ms != nil {
			ms.StorageBytes.Set(float64(rep.Total.Bytes))
			ms.StorageFiles.Set(float64(rep.Total.Files))
		}
		if _, err := m.audit(ctx, depot.AuditEvent{
			Action: depot.ActionReportGenerated, Outcome: depot.OutcomeSuccess,
			Metadata: map[string]string{"report": itoa(rep.ID), "files": itoa(rep.Total.Files), "bytes": itoa(rep.Total.Bytes)},
		}); err != nil {
			return nil, err
		}
		return map[string]any{"report": rep.ID, "cohorts": len(rep.Cohorts), "files": rep.Total.Files, "bytes": rep.Total.Bytes}, nil
	})
	return rep, err
}

func (m *Maintainer) buildReport(ctx context.Context) (Report, error) {
	now := m.now()
	rep := Report{Generated: now}
	since := now.Add(-24 * time.Hour)
	var prev *Report
	if kept, err := m.cfg.DB.Reports(ctx, 1, true); err != nil {
		return rep, err
	} else if len(kept) == 1 {
		var p Report
		if json.Unmarshal([]byte(kept[0].Body), &p) == nil {
			p.ID = kept[0].ID
			prev = &p
			rep.PreviousID, rep.PreviousGenerated = p.ID, &kept[0].Created
			since = kept[0].Created
		}
	}
	by := map[string]*CohortStats{}
	get := func(c string) *CohortStats {
		s := by[c]
		if s == nil {
			s = &CohortStats{Cohort: c}
			by[c] = s
		}
		return s
	}
	overdueBefore := now.Add(-m.cfg.CleanupInterval)
	after := ""
	for {
		recs, err := m.cfg.DB.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 1000})
		if err != nil {
			return rep, err
		}
		for _, r := range recs {
			after = r.ID
			s := get(r.Cohort)
			s.Files++
			s.Bytes += r.Size
			if r.Class == depot.Temporary {
				s.TemporaryFiles++
				s.TemporaryBytes += r.Size
				if r.CleanupScheduledFor != nil {
					if r.CleanupScheduledFor.Before(overdueBefore) {
						s.OverdueCleanups++
					} else {
						s.PendingCleanups++
					}
				}
			} else {
				s.PermanentFiles++
				s.PermanentBytes += r.Size
			}
			if r.LastVerified == nil {
				s.Unverified++
			} else {
				if s.LastVerified == nil || r.LastVerified.After(*s.LastVerified) {
					s.LastVerified = r.LastVerified
				}
				if s.OldestVerified == nil || r.LastVerified.Before(*s.OldestVerified) {
					s.OldestVerified = r.LastVerified
				}
			}
		}
		if len(recs) < 1000 {
			break
		}
	}
	failing, err := m.cfg.DB.CleanupFailures(ctx)
	if err != nil {
		return rep, err
	}
	for _, f := range failing {
		if v, err := m.cfg.DB.Version(ctx, f.Version); err == nil {
			get(v.Cohort).CleanupFailing++
		}
	}
	usages, err := m.cfg.DB.Usages(ctx)
	if err != nil {
		return rep, err
	}
	for _, u := range usages {
		s := get(u.Cohort)
		s.CurrentFiles, s.CurrentBytes = u.CurrentFiles, u.CurrentBytes
		s.OlderVersions, s.OlderBytes = u.OlderVersions, u.OlderBytes
		s.DeletedVersions, s.DeletedBytes = u.DeletedVersions, u.DeletedBytes
	}
	uploads, err := m.cfg.DB.UploadUsage(ctx)
	if err != nil {
		return rep, err
	}
	for c, n := range uploads {
		s := get(c)
		s.OpenUploads, s.OpenUploadBytes = n[0], n[1]
	}
	for action, field := range map[depot.Action]func(*CohortStats) *int64{
		depot.ActionIntegrityFailed: func(s *CohortStats) *int64 { return &s.IntegrityFailures },
		depot.ActionCleanupFailed:   func(s *CohortStats) *int64 { return &s.CleanupFailures },
		depot.ActionDownload:        func(s *CohortStats) *int64 { return &s.Downloads },
	} {
		counts, err := m.cfg.DB.CountActions(ctx, action, since)
		if err != nil {
			return rep, err
		}
		for c, n := range counts {
			if c != "" {
				*field(get(c)) += int64(n)
			}
		}
	}
	prevBy := map[string]CohortStats{}
	if prev != nil {
		for _, c := range prev.Cohorts {
			prevBy[c.Cohort] = c
		}
		for c := range prevBy {
			get(c) // a cohort that emptied shows negative growth
		}
	}
	total := CohortStats{Cohort: "total"}
	for _, s := range by {
		if prev != nil {
			p := prevBy[s.Cohort]
			gf, gb := s.Files-p.Files, s.Bytes-p.Bytes
			s.GrowthFiles, s.GrowthBytes = &gf, &gb
		}
		rep.Cohorts = append(rep.Cohorts, *s)
		addStats(&total, s)
	}
	if prev != nil {
		gf, gb := total.Files-prev.Total.Files, total.Bytes-prev.Total.Bytes
		total.GrowthFiles, total.GrowthBytes = &gf, &gb
	}
	sort.Slice(rep.Cohorts, func(i, j int) bool { return rep.Cohorts[i].Cohort < rep.Cohorts[j].Cohort })
	rep.Total = total
	fails, err := m.cfg.DB.JobFailuresSince(ctx, since)
	if err != nil {
		return rep, err
	}
	for _, job := range m.Jobs() {
		last, err := m.cfg.DB.LastJobSuccess(ctx, job)
		if err != nil {
			return rep, err
		}
		iv := m.Interval(job)
		rep.Jobs = append(rep.Jobs, JobStatus{
			Job: job, Interval: iv.String(), LastSuccess: last, Failures: fails[job],
			Missed: job != JobReport && (last == nil || now.Sub(*last) > 2*iv),
		})
	}
	return rep, nil
}

func addStats(t, s *CohortStats) {
	t.Files += s.Files
	t.Bytes += s.Bytes
	t.PermanentFiles += s.PermanentFiles
	t.PermanentBytes += s.PermanentBytes
	t.TemporaryFiles += s.TemporaryFiles
	t.TemporaryBytes += s.TemporaryBytes
	t.CurrentFiles += s.CurrentFiles
	t.CurrentBytes += s.CurrentBytes
	t.OlderVersions += s.OlderVersions
	t.OlderBytes += s.OlderBytes
	t.DeletedVersions += s.DeletedVersions
	t.DeletedBytes += s.DeletedBytes
	t.OpenUploads += s.OpenUploads
	t.OpenUploadBytes += s.OpenUploadBytes
	t.Downloads += s.Downloads
	t.PendingCleanups += s.PendingCleanups
	t.OverdueCleanups += s.OverdueCleanups
	t.CleanupFailing += s.CleanupFailing
	t.CleanupFailures += s.CleanupFailures
	t.IntegrityFailures += s.IntegrityFailures
	t.Unverified += s.Unverified
	if s.LastVerified != nil && (t.LastVerified == nil || s.LastVerified.After(*t.LastVerified)) {
		t.LastVerified = s.LastVerified
	}
	if s.OldestVerified != nil && (t.OldestVerified == nil || s.OldestVerified.Before(*t.OldestVerified)) {
		t.OldestVerified = s.OldestVerified
	}
}

// LoadReport reads a kept report.
func LoadReport(ctx context.Context, db *servicedb.DB, id int64) (Report, error) {
	sr, err := db.GetReport(ctx, id)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	if err := json.Unmarshal([]byte(sr.Body), &rep); err != nil {
		return Report{}, depot.WrapError(depot.CodeInternal, "stored report is corrupt", err)
	}
	rep.ID = sr.ID
	return rep, nil
}

// Render writes rep as "text", "json" or "html".
func Render(w io.Writer, rep Report, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "html":
		return renderHTML(w, rep)
	case "text", "":
		return renderText(w, rep)
	}
	return depot.Errorf(depot.CodeInvalid, "unknown report format %q (use text, json or html)", format)
}

func renderText(w io.Writer, rep Report) error {
	fmt.Fprintf(w, "storage report %d, generated %s\n", rep.ID, rep.Generated.Format(time.RFC3339))
	if rep.PreviousGenerated != nil {
		fmt.Fprintf(w, "growth since report %d of %s\n", rep.PreviousID, rep.PreviousGenerated.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cohort\tfiles\tbytes\tpermanent\ttemporary\tgrowth files\tgrowth bytes\tpending\toverdue\tfailing\tintegrity fail\tunverified\tlast verified\t")
	rows := append(append([]CohortStats{}, rep.Cohorts...), rep.Total)
	for _, c := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", c.Cohort, c.Files, humanBytes(c.Bytes),
			c.PermanentFiles, c.TemporaryFiles, signed(c.GrowthFiles, false), signed(c.GrowthBytes, true),
			c.PendingCleanups, c.OverdueCleanups, c.CleanupFailing, c.IntegrityFailures, c.Unverified, when(c.LastVerified))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, j := range rep.Jobs {
		state := "ok"
		if j.Missed {
			state = "MISSED"
		}
		fmt.Fprintf(w, "job %-8s every %-8s last success %-20s failures %d  %s\n", j.Job, j.Interval, when(j.LastSuccess), j.Failures, state)
	}
	return nil
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func signed(n *int64, bytes bool) string {
	if n == nil {
		return "-"
	}
	v := *n
	sign := "+"
	if v < 0 {
		sign, v = "-", -v
	}
	if bytes {
		return sign + humanBytes(v)
	}
	return fmt.Sprintf("%s%d", sign, v)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// bar is one bar of an inline SVG chart.
type bar struct {
	Label        string
	Y            int
	Perm, Temp   int // widths
	PermN, TempN string
}

type chart struct {
	Title  string
	Height int
	Bars   []bar
}

func makeChart(title string, cohorts []CohortStats, perm, temp func(CohortStats) int64, format func(int64) string) chart {
	var max int64 = 1
	for _, c := range cohorts {
		if v := perm(c) + temp(c); v > max {
			max = v
		}
	}
	ch := chart{Title: title, Height: 24*len(cohorts) + 8}
	for i, c := range cohorts {
		ch.Bars = append(ch.Bars, bar{
			Label: c.Cohort, Y: 4 + 24*i,
			Perm: int(perm(c) * 400 / max), Temp: int(temp(c) * 400 / max),
			PermN: format(perm(c)), TempN: format(temp(c)),
		})
	}
	return ch
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"when": when, "bytes": humanBytes, "signed": signed, "add": func(a, b int) int { return a + b },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>depot storage report {{.R.ID}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}tr.total{font-weight:bold}.missed{color:#b00;font-weight:bold}
svg text{font:12px system-ui,sans-serif}
</style></head><body>
<h1>depot storage report {{.R.ID}}</h1>
<p>Generated {{.R.Generated.Format "2006-01-02 15:04:05 MST"}}{{if .R.PreviousGenerated}}; growth since report {{.R.PreviousID}} of {{when .R.PreviousGenerated}}{{end}}.</p>
<table><thead><tr><th>cohort</th><th>files</th><th>bytes</th><th>permanent</th><th>temporary</th><th>growth (files)</th><th>growth (bytes)</th><th>pending cleanups</th><th>overdue cleanups</th><th>cleanup failing</th><th>integrity failures</th><th>unverified</th><th>last verified</th></tr></thead><tbody>
{{range .Rows}}<tr{{if eq .Cohort "total"}} class="total"{{end}}><td>{{.Cohort}}</td><td>{{.Files}}</td><td>{{bytes .Bytes}}</td><td>{{.PermanentFiles}}</td><td>{{.TemporaryFiles}}</td><td>{{signed .GrowthFiles false}}</td><td>{{signed .GrowthBytes true}}</td><td>{{.PendingCleanups}}</td><td>{{.OverdueCleanups}}</td><td>{{.CleanupFailing}}</td><td>{{.IntegrityFailures}}</td><td>{{.Unverified}}</td><td>{{when .LastVerified}}</td></tr>
{{end}}</tbody></table>
{{range .Charts}}<h2>{{.Title}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{{add .Height 20}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="0" y="{{add .Y 14}}">{{.Label}}</text>
<rect x="150" y="{{.Y}}" width="{{.Perm}}" height="18" fill="#3465a4"><title>permanent: {{.PermN}}</title></rect>
<rect x="{{add 150 .Perm}}" y="{{.Y}}" width="{{.Temp}}" height="18" fill="#f5a623"><title>temporary: {{.TempN}}</title></rect>
<text x="{{add 156 (add .Perm .Temp)}}" y="{{add .Y 14}}">{{.PermN}} + {{.TempN}}</text>
{{end}}<rect x="150" y="{{.Height}}" width="10" height="10" fill="#3465a4"/><text x="164" y="{{add .Height 9}}">permanent</text>
<rect x="250" y="{{.Height}}" width="10" height="10" fill="#f5a623"/><text x="264" y="{{add .Height 9}}">temporary</text>
</svg>
{{end}}
<h2>Jobs</h2>
<table><thead><tr><th>job</th><th>interval</th><th>last success</th><th>failures</th><th>state</th></tr></thead><tbody>
{{range .R.Jobs}}<tr><td>{{.Job}}</td><td>{{.Interval}}</td><td>{{when .LastSuccess}}</td><td>{{.Failures}}</td><td{{if .Missed}} class="missed"{{end}}>{{if .Missed}}missed{{else}}ok{{end}}</td></tr>
{{end}}</tbody></table>
</body></html>
`))

func renderHTML(w io.Writer, rep Report) error {
	rows := append(append([]CohortStats{}, rep.Cohorts...), rep.Total)
	count := func(n int64) string { return fmt.Sprint(n) }
	data := struct {
		R      Report
		Rows   []CohortStats
		Charts []chart
	}{R: rep, Rows: rows, Charts: []chart{
		makeChart("Bytes per cohort", rep.Cohorts,
			func(c CohortStats) int64 { return c.PermanentBytes }, func(c CohortStats) int64 { return c.TemporaryBytes }, humanBytes),
		makeChart("Files per cohort", rep.Cohorts,
			func(c CohortStats) int64 { return c.PermanentFiles }, func(c CohortStats) int64 { return c.TemporaryFiles }, count),
	}}
	var b strings.Builder
	if err := htmlTmpl.Execute(&b, data); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
