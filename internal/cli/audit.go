package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"depot"
	"depot/checkpoint"
	"depot/internal/config"
	"depot/servicedb"
)

func auditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "read, export and check the audit trail"}
	cmd.AddCommand(auditShowCmd(e), auditExportCmd(e), auditVerifyCmd(e), auditCheckpointCmd(e), auditCheckProofCmd(e))
	return cmd
}

// auditFilterFlags binds the common selection flags and returns a function
// that builds the filter.
func auditFilterFlags(cmd *cobra.Command) func() (servicedb.Filter, error) {
	cohort := cmd.Flags().String("cohort", "", "only this cohort")
	user := cmd.Flags().String("user", "", "only this user (actor)")
	action := cmd.Flags().String("action", "", "only this action (e.g. upload.completed)")
	path := cmd.Flags().String("path", "", "only storage keys starting with this (cohort/path)")
	since := cmd.Flags().String("since", "", "from this time (RFC 3339 or YYYY-MM-DD)")
	until := cmd.Flags().String("until", "", "before this time (RFC 3339 or YYYY-MM-DD)")
	days := cmd.Flags().Int("days", 0, "only the last N days")
	return func() (servicedb.Filter, error) {
		f := servicedb.Filter{Cohort: *cohort, Actor: *user, Action: depot.Action(*action), KeyPrefix: *path}
		var err error
		if f.Since, err = parseWhen(*since); err != nil {
			return f, err
		}
		if f.Until, err = parseWhen(*until); err != nil {
			return f, err
		}
		if *days > 0 {
			f.Since = time.Now().UTC().AddDate(0, 0, -*days)
		}
		return f, nil
	}
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageErr("%q is not a time (use RFC 3339 or YYYY-MM-DD)", s)
}

// eachEvent pages through the events matching f.
func eachEvent(ctx context.Context, db *servicedb.DB, f servicedb.Filter, fn func(depot.AuditEvent) error) error {
	f.Limit = servicedb.DefaultLimit
	for {
		evs, err := db.Events(ctx, f)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return err
			}
			f.AfterSeq = ev.Seq
		}
		if len(evs) < f.Limit {
			return nil
		}
	}
}

func auditShowCmd(e *env) *cobra.Command {
	cmd := dbCommand("show", "show a readable timeline of audit records", cobra.NoArgs)
	filter := auditFilterFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := filter()
		if err != nil {
			return err
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			return eachEvent(ctx, db, f, func(ev depot.AuditEvent) error {
				line := fmt.Sprintf("%6d  %s  %-18s %-8s", ev.Seq, ev.Time.Format("2006-01-02 15:04:05.000"), ev.Action, ev.Outcome)
				if ev.Actor != "" {
					line += "  user=" + ev.Actor
				}
				if ev.Key != "" {
					line += "  path=" + strconv.Quote(ev.Key)
				} else if ev.Cohort != "" {
					line += "  cohort=" + ev.Cohort
				}
				if ev.StoredSize >= 0 {
					line += fmt.Sprintf("  size=%d", ev.StoredSize)
				}
				if ev.ErrorCode != "" {
					line += "  error=" + ev.ErrorCode
				}
				if ev.ClientIP != "" {
					line += "  ip=" + ev.ClientIP
				}
				_, err := fmt.Fprintln(e.stdout, line)
				return err
			})
		})
	}
	return cmd
}

func auditExportCmd(e *env) *cobra.Command {
	cmd := dbCommand("export", "export audit records as JSON lines or CSV (with --proofs: a proof bundle)", cobra.NoArgs)
	filter := auditFilterFlags(cmd)
	format := cmd.Flags().String("format", "jsonl", "jsonl or csv")
	proofs := cmd.Flags().Bool("proofs", false, "write a proof bundle: the signed checkpoint, then each record with its inclusion proof (JSON lines; see depot audit check-proof)")
	srcs := cmd.Flags().StringArray("checkpoints", nil, "with --proofs: prove against the newest checkpoint kept here (a witness directory, s3:// or http(s):// URL) instead of signing a new one")
	bind(cmd, config.AuditVars...)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := filter()
		if err != nil {
			return err
		}
		if *proofs {
			if *format != "jsonl" {
				return usageErr("--proofs writes JSON lines: leave --format at jsonl")
			}
			return exportProofs(e, cmd, f, *srcs)
		}
		var write func(depot.AuditEvent) error
		var flush func() error
		switch *format {
		case "jsonl":
			enc := json.NewEncoder(e.stdout)
			write, flush = func(ev depot.AuditEvent) error { return enc.Encode(ev) }, func() error { return nil }
		case "csv":
			write, flush = csvWriter(e.stdout)
		default:
			return usageErr("--format must be jsonl or csv")
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := eachEvent(ctx, db, f, write); err != nil {
				return err
			}
			return flush()
		})
	}
	return cmd
}

func csvWriter(w io.Writer) (func(depot.AuditEvent) error, func() error) {
	cw := csv.NewWriter(w)
	header := []string{"seq", "time", "action", "outcome", "error_code", "actor", "auth_method", "cohort", "path",
		"file_name", "upload_id", "declared_size", "bytes_transferred", "stored_size", "sha256", "server_role",
		"web_node", "correlation_id", "client_ip", "user_agent", "stream_start", "stream_complete", "duration_ms",
		"file_class", "cleanup_scheduled_for", "metadata", "prev_hash", "hash"}
	wroteHeader := false
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return func(ev depot.AuditEvent) error {
			if !wroteHeader {
				wroteHeader = true
				if err := cw.Write(header); err != nil {
					return err
				}
			}
			meta, _ := json.Marshal(ev.Metadata)
			return cw.Write([]string{strconv.FormatInt(ev.Seq, 10), ev.Time.UTC().Format(time.RFC3339Nano),
				string(ev.Action), string(ev.Outcome), ev.ErrorCode, ev.Actor, ev.AuthMethod, ev.Cohort, ev.Key,
				ev.FileName, ev.UploadID, strconv.FormatInt(ev.DeclaredSize, 10), strconv.FormatInt(ev.BytesTransferred, 10),
				strconv.FormatInt(ev.StoredSize, 10), ev.SHA256, ev.ServerRole, ev.WebNode, ev.CorrelationID, ev.ClientIP,
				ev.UserAgent, ts(ev.StreamStart), ts(ev.StreamComplete), strconv.FormatInt(ev.DurationMS, 10),
				string(ev.FileClass), ts(ev.CleanupScheduledFor), string(meta), ev.PrevHash, ev.Hash})
		}, func() error {
			if !wroteHeader {
				if err := cw.Write(header); err != nil {
					return err
				}
			}
			cw.Flush()
			return cw.Error()
		}
}

func auditVerifyCmd(e *env) *cobra.Command {
	cmd := dbCommand("verify", "recompute the audit hash chain (and with --checkpoints, check the trail against its signed checkpoints); exit 6 when it does not hold", cobra.NoArgs)
	srcs := cmd.Flags().StringArray("checkpoints", nil, "check against the checkpoints kept here: a witness directory, an s3:// URL or an http(s):// witness URL (repeatable)")
	allowance := cmd.Flags().Duration("allowance", checkpoint.DefaultAllowance, "with --checkpoints: how far before the checkpoint it follows a record may be dated")
	verbose := cmd.Flags().BoolP("verbose", "v", false, "with --checkpoints: list every checkpoint, not only those that do not hold")
	bind(cmd, config.AuditPublicKeyFile, config.AuditSigningKeyFile)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		var v note.Verifier
		var notes []checkpoint.Signed
		if len(*srcs) > 0 {
			var err error
			if v, err = publicKey(s); err != nil {
				return err
			}
			if notes, err = checkpointsFrom(cmd.Context(), *srcs); err != nil {
				return err
			}
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if v == nil {
				rep, err := db.VerifyChain(ctx)
				if err != nil {
					return err
				}
				return printChain(e, rep)
			}
			r, err := checkpoint.Verify(ctx, db, notes, v, checkpoint.Options{Allowance: *allowance})
			if err != nil {
				return err
			}
			chainErr := printChain(e, r.Chain)
			printCheckpointReport(e, r, *verbose)
			if !r.OK() {
				fmt.Fprintf(e.stdout, "audit trail does NOT match its checkpoints: %s\n", r.Findings[0].Problem)
				return &exitError{code: ExitIntegrity, err: fmt.Errorf("audit trail does not match its checkpoints (%s)", r.Findings[0].Problem)}
			}
			fmt.Fprintf(e.stdout, "audit trail matches its checkpoints: %d records, %d after the last checkpoint\n", r.Records, r.Records-r.LastGood.Check.Size)
			return chainErr
		})
	}
	return cmd
}

// printChain prints the chain check and returns the exit error of a broken
// chain.
func printChain(e *env, rep servicedb.ChainReport) error {
	if rep.OK {
		fmt.Fprintf(e.stdout, "audit chain intact: %d records, last seq %d, head %s\n", rep.Checked, rep.LastSeq, rep.LastHash)
		return nil
	}
	fmt.Fprintf(e.stdout, "audit chain BROKEN at seq %d: %s: %s\n", rep.FirstBad, rep.Problem, rep.Detail)
	return &exitError{code: ExitIntegrity, err: fmt.Errorf("audit chain broken at record %d (%s)", rep.FirstBad, rep.Problem)}
}
