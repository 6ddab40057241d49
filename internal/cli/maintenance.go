package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
var maintenanceVars = append([]config.Var{
	config.StorageURL, config.DatabaseURL, config.UploadExpiry, config.NodeName, config.LogLevel,
}, config.MaintenanceVars...)

// The services role runs the scheduled jobs: serve takes their settings.
func init() { serveVars = append(serveVars, config.MaintenanceVars...) }

// maintenanceConfig builds the maintenance configuration from s.
func maintenanceConfig(s settings, db *servicedb.DB, store *storage.Store) (maintenance.Config, error) {
	cfg := maintenance.Config{DB: db, Store: store, Node: s.nodeName(), Log: s.logger().With("role", "services")}
	for v, d := range map[config.Var]*time.Duration{
		config.CleanupInterval: &cfg.CleanupInterval, config.VerifyInterval: &cfg.VerifyInterval,
		config.ReportInterval: &cfg.ReportInterval, config.CleanupLease: &cfg.Lease, config.StrayGrace: &cfg.StrayGrace,
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
	cfg.Alerts = &maintenance.Alerter{URL: s.get(config.AlertWebhookURL), Log: cfg.Log}
	return cfg, nil
}

// openMaintainer opens storage and database for a maintenance command.
func openMaintainer(ctx context.Context, s settings) (*maintenance.Maintainer, *servicedb.DB, func(), error) {
	expiry, err := s.duration(config.UploadExpiry)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openStore(ctx, s.get(config.StorageURL), storage.Options{UploadExpiry: expiry})
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openDatabase(ctx, s.get(config.DatabaseURL))
	if err != nil {
		store.Driver().Close()
		return nil, nil, nil, err
	}
	closeAll := func() { db.Close(); store.Driver().Close() }
	cfg, err := maintenanceConfig(s, db, store)
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return maintenance.New(cfg), db, closeAll, nil
}

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
			fmt.Fprintf(e.stdout, "temporary files due: %d, %s: %d (%d bytes), failed attempts: %d, refused (class conflict): %d\n",
				res.Due, verb, res.Deleted, res.DeletedBytes, res.DeleteFailures, res.Refused)
			fmt.Fprintf(e.stdout, "upload sessions open: %d, expired: %d\n", res.UploadsOpen, res.UploadsExpired)
			fmt.Fprintf(e.stdout, "orphans: %d objects without a record, %d records without an object (reported, not deleted)\n",
				res.OrphanObjects, res.OrphanRecords)
			fmt.Fprintf(e.stdout, "crash leftovers: %d found, %d removed (%d bytes)\n", res.Strays, res.StraysRemoved, res.StrayBytes)
		}
		if res.DeleteFailures > 0 || res.Refused > 0 {
			return &exitError{code: ExitFailure, err: fmt.Errorf("cleanup: %d failed deletions, %d refused", res.DeleteFailures, res.Refused)}
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
