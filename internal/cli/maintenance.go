package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"depot/internal/config"
	"depot/maintenance"
	"depot/metrics"
	"depot/servicedb"
	"depot/storage"
)

// maintenanceVars are bound by the maintenance commands and by serve.
var maintenanceVars = slices.Concat([]config.Var{
	config.StorageURL, config.KEKFile, config.DatabaseURL, config.UploadExpiry, config.BodyIdle, config.NodeName, config.LogLevel,
}, config.MaintenanceVars, config.ScanVars)

// maintenanceConfig builds the maintenance configuration from s.
func maintenanceConfig(s settings, db *servicedb.DB, store *storage.Store) (maintenance.Config, error) {
	cfg := maintenance.Config{DB: db, Store: store, Node: s.nodeName(), Log: s.logger().With("role", "services")}
	for v, d := range map[config.Var]*time.Duration{
		config.CleanupInterval: &cfg.CleanupInterval, config.VerifyInterval: &cfg.VerifyInterval,
		config.ReportInterval: &cfg.ReportInterval, config.CleanupLease: &cfg.Lease, config.StrayGrace: &cfg.StrayGrace,
		config.DeletedRetention: &cfg.DeletedRetention,
	} {
		var err error
		if *d, err = s.duration(v); err != nil {
			return cfg, err
		}
	}
	for _, v := range []config.Var{config.CleanupInterval, config.VerifyInterval, config.ReportInterval} {
		if d, _ := s.duration(v); d < time.Second {
			return cfg, usageErr("%s must be at least 1s", v.Env)
		}
	}
	// Zero once silently meant the default (1h): refuse it instead. A
	// grace of zero would remove the temporary file of a write in progress
	// and report a file being committed as an orphan.
	if cfg.StrayGrace < time.Second {
		return cfg, usageErr("%s must be at least 1s (a leftover younger than it may belong to a write in progress)", config.StrayGrace.Env)
	}
	if cfg.Lease < time.Second {
		return cfg, usageErr("%s must be at least 1s", config.CleanupLease.Env)
	}
	n, err := s.int(config.CleanupMaxFailures)
	if err != nil {
		return cfg, err
	}
	cfg.MaxFailures = n
	rate, err := strconv.ParseInt(s.get(config.VerifyRate), 10, 64)
	if err != nil || rate < 0 {
		return cfg, usageErr("%s: %q is not a number of bytes per second", config.VerifyRate.Env, s.get(config.VerifyRate))
	}
	cfg.VerifyRate = rate
	alertFormat, reportFormat := s.get(config.AlertFormat), s.get(config.ReportFormat)
	if err := maintenance.CheckFormat(alertFormat, maintenance.AlertFormats); err != nil {
		return cfg, usageErr("%s: %v", config.AlertFormat.Env, err)
	}
	if err := maintenance.CheckFormat(reportFormat, maintenance.ReportFormats); err != nil {
		return cfg, usageErr("%s: %v", config.ReportFormat.Env, err)
	}
	cfg.Alerts = &maintenance.Alerter{URL: s.get(config.AlertWebhookURL), Format: alertFormat, Log: cfg.Log}
	if cfg.Scanner, err = scanGate(s, cfg.Log); err != nil {
		return cfg, err
	}
	if cfg.ScanInterval, err = s.duration(config.ScanInterval); err != nil {
		return cfg, err
	}
	if u := s.get(config.ReportWebhookURL); u != "" {
		cfg.Reports = &maintenance.Alerter{URL: u, Format: reportFormat, Log: cfg.Log}
	}
	return cfg, nil
}

// openMaintainer opens storage and database for a maintenance command.
func openMaintainer(ctx context.Context, s settings) (*maintenance.Maintainer, *servicedb.DB, func(), error) {
	expiry, err := s.duration(config.UploadExpiry)
	if err != nil {
		return nil, nil, nil, err
	}
	idle, err := s.duration(config.BodyIdle)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openDatabase(ctx, s.get(config.DatabaseURL))
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openStore(ctx, s, db, storage.Options{UploadExpiry: expiry, PlainExpiry: plainExpiry(idle)})
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	closeAll := func() { store.Close(); db.Close() }
	cfg, err := maintenanceConfig(s, db, store)
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return maintenance.New(cfg), db, closeAll, nil
}

// plainExpiry is how long a plain PUT's upload session may stay idle: two
// body idle timeouts, after which its request cannot be alive any more.
func plainExpiry(bodyIdle time.Duration) time.Duration { return 2 * bodyIdle }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cleanupCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "run the cleanup job now: due temporary files, expired uploads, orphans, crash leftovers",
		Args:  cobra.NoArgs,
	}
	bind(cmd, maintenanceVars...)
	dry := cmd.Flags().Bool("dry-run", false, "report what would be done; change nothing")
	asJSON := cmd.Flags().Bool("json", false, "print the result as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		m, _, done, err := openMaintainer(cmd.Context(), s)
		if err != nil {
			return err
		}
		defer done()
		res, err := m.Cleanup(cmd.Context(), maintenance.TriggerCLI, *dry)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(e.stdout, res); err != nil {
				return err
			}
		} else {
			verb := "deleted"
			if res.DryRun {
				verb = "would delete"
				fmt.Fprintln(e.stdout, "dry run: nothing was changed")
			}
			fmt.Fprintf(e.stdout, "temporary versions due: %d, deleted files past their retention: %d, versions purged: %d (%d bytes), kept by a hold: %d, failed removals: %d\n",
				res.Due, res.RetentionEnded, res.Deleted, res.DeletedBytes, res.Held, res.DeleteFailures)
			fmt.Fprintf(e.stdout, "upload sessions open: %d, expired: %d\n", res.UploadsOpen, res.UploadsExpired)
			fmt.Fprintf(e.stdout, "orphans: %d objects no version refers to (%s), %d versions whose object is missing (reported)\n",
				res.OrphanObjects, verb, res.OrphanRecords)
			fmt.Fprintf(e.stdout, "crash leftovers: %d found, %d removed (%d bytes)\n", res.Strays, res.StraysRemoved, res.StrayBytes)
		}
		if res.DeleteFailures > 0 || res.OrphanRecords > 0 {
			return &exitError{code: ExitFailure, err: fmt.Errorf("cleanup: %d failed removals, %d versions without their object", res.DeleteFailures, res.OrphanRecords)}
		}
		return nil
	}
	return cmd
}

func verifyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "run the integrity job now: re-read every stored file and compare size and SHA-256",
		Args:  cobra.NoArgs,
	}
	bind(cmd, maintenanceVars...)
	asJSON := cmd.Flags().Bool("json", false, "print the result as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		m, _, done, err := openMaintainer(cmd.Context(), s)
		if err != nil {
			return err
		}
		defer done()
		res, err := m.Verify(cmd.Context(), maintenance.TriggerCLI)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(e.stdout, res); err != nil {
				return err
			}
		} else {
			if res.ResumedAfter {
				fmt.Fprintln(e.stdout, "resumed an interrupted pass")
			}
			fmt.Fprintf(e.stdout, "files: %d, verified: %d, failed: %d (missing %d, mismatched %d), skipped (changed meanwhile): %d\n",
				res.Files, res.Verified, res.Failed, res.Missing, res.Mismatched, res.Skipped)
			fmt.Fprintf(e.stdout, "read %d bytes in %.2f s (%.1f MB/s)\n", res.Bytes, res.Seconds, res.MBPerSecond)
		}
		if res.Failed > 0 {
			return &exitError{code: ExitIntegrity, err: fmt.Errorf("verify: %d files failed integrity verification (see depot audit show --action integrity.failed)", res.Failed)}
		}
		return nil
	}
	return cmd
}

func reportCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "generate a storage report now (or show a kept one)",
		Args:  cobra.NoArgs,
	}
	bind(cmd, maintenanceVars...)
	format := cmd.Flags().String("format", "text", "text, json or html")
	list := cmd.Flags().Bool("list", false, "list the kept reports")
	id := cmd.Flags().Int64("id", 0, "show kept report ID instead of generating one")
	out := cmd.Flags().StringP("output", "o", "", "write the report to this file")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch *format {
		case "text", "json", "html":
		default:
			return usageErr("--format must be text, json or html")
		}
		s := settings{e: e, cmd: cmd}
		m, db, done, err := openMaintainer(cmd.Context(), s)
		if err != nil {
			return err
		}
		defer done()
		if *list {
			reps, err := db.Reports(cmd.Context(), 100, false)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tGENERATED")
			for _, r := range reps {
				fmt.Fprintf(tw, "%d\t%s\n", r.ID, r.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		}
		var rep maintenance.Report
		if *id > 0 {
			rep, err = maintenance.LoadReport(cmd.Context(), db, *id)
		} else {
			rep, err = m.Report(cmd.Context(), maintenance.TriggerCLI)
		}
		if err != nil {
			return err
		}
		w := e.stdout
		if *out != "" {
			f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if err := maintenance.Render(f, rep, *format); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		return maintenance.Render(w, rep, *format)
	}
	return cmd
}

func jobsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "list recent runs of the maintenance jobs",
		Args:  cobra.NoArgs,
	}
	bind(cmd, config.DatabaseURL)
	job := cmd.Flags().String("job", "", "only this job: cleanup, verify or report")
	limit := cmd.Flags().Int("limit", 20, "at most this many runs")
	asJSON := cmd.Flags().Bool("json", false, "print as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		db, err := openDatabase(cmd.Context(), s.get(config.DatabaseURL))
		if err != nil {
			return err
		}
		defer db.Close()
		runs, err := db.JobRuns(cmd.Context(), *job, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, runs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tJOB\tTRIGGER\tSTARTED\tDURATION\tOUTCOME\tCODE\tSUMMARY")
		for _, r := range runs {
			dur := "-"
			if r.Finished != nil {
				dur = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Job, r.Trigger, r.Started.Format(time.RFC3339),
				dur, r.Outcome, r.ErrorCode, r.Summary)
		}
		return tw.Flush()
	}
	return cmd
}

// startMaintenance starts the River scheduler of the maintenance jobs in a
// services process (unless DEPOT_MAINTENANCE=off) and returns its stop
// function. With audit set, the audit-verify job runs too.
func startMaintenance(ctx context.Context, s settings, db *servicedb.DB, store *storage.Store, ms *metrics.Set, audit *maintenance.AuditCheck) (func(), *maintenance.Maintainer, error) {
	on := true
	switch s.get(config.Maintenance) {
	case "off":
		on = false
	case "on", "":
	default:
		return nil, nil, usageErr("%s must be on or off", config.Maintenance.Env)
	}
	cfg, err := maintenanceConfig(s, db, store)
	if err != nil {
		return nil, nil, err
	}
	cfg.Metrics = ms
	if audit != nil {
		cfg.Audit = audit
		if cfg.AuditVerifyInterval, err = s.duration(config.AuditVerifyInterval); err != nil {
			return nil, nil, err
		}
		if cfg.AuditVerifyInterval < time.Second {
			return nil, nil, usageErr("%s must be at least 1s", config.AuditVerifyInterval.Env)
		}
	}
	m := maintenance.New(cfg)
	if !on {
		return func() {}, m, nil
	}
	sched, err := maintenance.StartScheduler(ctx, m, maintenance.SchedulerOptions{DatabaseURL: s.get(config.DatabaseURL)})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot start the maintenance jobs: %w", err)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = sched.Stop(sctx)
	}, m, nil
}
