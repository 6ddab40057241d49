package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"depot/checkpoint"
	"depot/internal/config"
	"depot/maintenance"
	"depot/servicedb"
)

// checkpointSetup is the audit checkpoint configuration of a process.
type checkpointSetup struct {
	key       *checkpoint.SigningKey
	witnesses []checkpoint.Witness
	every     int64
	interval  time.Duration
}

// checkpointSettings reads the checkpoint settings: nil when no signing
// key and no witness are configured. A key without a witness, or a witness
// without a key, is a usage error.
func checkpointSettings(ctx context.Context, s settings) (*checkpointSetup, error) {
	ws, err := witnesses(ctx, s)
	if err != nil {
		return nil, err
	}
	keyFile := s.get(config.AuditSigningKeyFile)
	switch {
	case keyFile == "" && len(ws) == 0:
		return nil, nil
	case keyFile == "":
		return nil, usageErr("a checkpoint witness is set but no %s to sign checkpoints with (depot keys generate-signing FILE)", config.AuditSigningKeyFile.Env)
	case len(ws) == 0:
		return nil, usageErr("%s is set but no witness to keep the checkpoints: set %s, %s or %s",
			config.AuditSigningKeyFile.Env, config.AuditWitnessDir.Env, config.AuditWitnessS3.Env, config.AuditWitnessURL.Env)
	}
	key, err := checkpoint.ReadSigningKey(keyFile)
	if err != nil {
		return nil, usageErr("%s: %v", config.AuditSigningKeyFile.Env, err)
	}
	every, err := s.int(config.AuditCheckpointRecords)
	if err != nil {
		return nil, err
	}
	interval, err := s.duration(config.AuditCheckpointInterval)
	if err != nil {
		return nil, err
	}
	if every < 1 || interval < time.Second {
		return nil, usageErr("%s must be at least 1 and %s at least 1s", config.AuditCheckpointRecords.Env, config.AuditCheckpointInterval.Env)
	}
	return &checkpointSetup{key: key, witnesses: ws, every: int64(every), interval: interval}, nil
}

// witnesses opens the configured witnesses.
func witnesses(ctx context.Context, s settings) ([]checkpoint.Witness, error) {
	var out []checkpoint.Witness
	if dir := s.get(config.AuditWitnessDir); dir != "" {
		out = append(out, checkpoint.NewDir(dir))
	}
	for _, v := range []config.Var{config.AuditWitnessS3, config.AuditWitnessURL} {
		src := s.get(v)
		if src == "" {
			continue
		}
		if v == config.AuditWitnessS3 && !isScheme(src, "s3") || v == config.AuditWitnessURL && !isScheme(src, "http", "https") {
			return nil, usageErr("%s has the wrong scheme", v.Env)
		}
		w, err := checkpoint.OpenWitness(ctx, src)
		if err != nil {
			return nil, usageErr("%s: %v", v.Env, err)
		}
		out = append(out, w)
	}
	return out, nil
}

func isScheme(src string, schemes ...string) bool {
	for _, sc := range schemes {
		if len(src) > len(sc)+3 && src[:len(sc)+3] == sc+"://" {
			return true
		}
	}
	return false
}

// publicKey returns the verifier the audit commands trust:
// DEPOT_AUDIT_PUBLIC_KEY_FILE, else the public half of the signing key.
func publicKey(s settings) (note.Verifier, error) {
	path := s.get(config.AuditPublicKeyFile)
	if path == "" {
		path = s.get(config.AuditSigningKeyFile)
	}
	if path == "" {
		return nil, usageErr("no key to check checkpoints with: set %s (or %s)", config.AuditPublicKeyFile.Env, config.AuditSigningKeyFile.Env)
	}
	v, err := checkpoint.ReadVerifier(path)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return v, nil
}

// startCheckpoints starts the checkpoint writer of a services process, or
// does nothing when checkpoints are off. It returns the audit-verify job's
// configuration (nil when off) and the function that stops the writer,
// which writes the last checkpoint.
func startCheckpoints(ctx context.Context, s settings, db *servicedb.DB, log *slog.Logger) (*maintenance.AuditCheck, func(), error) {
	cs, err := checkpointSettings(ctx, s)
	if err != nil || cs == nil {
		if cs == nil && err == nil {
			log.Info("audit checkpoints off: the audit trail proves only its own consistency (see docs/audit.md)")
		}
		return nil, func() {}, err
	}
	alerts := &maintenance.Alerter{URL: s.get(config.AlertWebhookURL), Log: log}
	node := s.nodeName()
	w, err := checkpoint.Start(ctx, checkpoint.Config{
		DB: db, Key: cs.key, Witnesses: cs.witnesses, Every: cs.every, Interval: cs.interval, Log: log,
		Alert: func(ctx context.Context, a checkpoint.Alert) {
			sev := "critical"
			if a.Kind == checkpoint.KindWitnessDown {
				sev = "warning"
			}
			_ = alerts.Send(ctx, maintenance.Alert{Time: time.Now().UTC(), Kind: a.Kind, Severity: sev, Node: node,
				Job: "audit-checkpoint", Message: a.Message, Details: a.Details})
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot start audit checkpoints: %w", err)
	}
	log.Info("audit checkpoints on", "witnesses", len(cs.witnesses), "every_records", cs.every, "interval", cs.interval.String(), "key", cs.key.Name())
	check := &maintenance.AuditCheck{Witnesses: cs.witnesses, Verifier: cs.key.Verifier}
	return check, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.Close(cctx); err != nil {
			log.Warn("the last audit checkpoint did not reach every witness", "err", err.Error())
		}
	}, nil
}

func auditCheckpointCmd(e *env) *cobra.Command {
	cmd := dbCommand("checkpoint", "sign a checkpoint of the audit trail now and write it to the witnesses", cobra.NoArgs)
	bind(cmd, config.AuditVars...)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := settings{e: e, cmd: cmd}
		cs, err := checkpointSettings(cmd.Context(), s)
		if err != nil {
			return err
		}
		if cs == nil {
			return usageErr("audit checkpoints are not configured: set %s and a witness", config.AuditSigningKeyFile.Env)
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			w, err := checkpoint.New(checkpoint.Config{DB: db, Key: cs.key, Witnesses: cs.witnesses})
			if err != nil {
				return err
			}
			c, err := w.Checkpoint(ctx)
			if c.Size > 0 || err == nil {
				fmt.Fprintf(e.stdout, "checkpoint: %d records, root %s, signed %s by %s\n", c.Size, c.Root, c.Time.Format(time.RFC3339Nano), c.Origin)
			}
			if err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			return nil
		})
	}
	return cmd
}

// checkpointsFrom reads the notes of every source.
func checkpointsFrom(ctx context.Context, srcs []string) ([]checkpoint.Signed, error) {
	var out []checkpoint.Signed
	for _, src := range srcs {
		w, err := checkpoint.OpenWitness(ctx, src)
		if err != nil {
			return nil, usageErr("--checkpoints: %v", err)
		}
		got, err := w.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// printCheckpointReport writes a verification report for an operator.
func printCheckpointReport(e *env, r *checkpoint.Report, verbose bool) {
	hold := 0
	for _, c := range r.Checkpoints {
		if c.Holds {
			hold++
		}
	}
	fmt.Fprintf(e.stdout, "checkpoints: %d signed by %s (%d hold, %d do not)", len(r.Checkpoints), r.Key, hold, len(r.Checkpoints)-hold)
	if len(r.Ignored) > 0 {
		fmt.Fprintf(e.stdout, "; %d in the witness not signed by this key, ignored", len(r.Ignored))
	}
	fmt.Fprintln(e.stdout)
	for _, c := range r.Checkpoints {
		if verbose || !c.Holds {
			state := "holds"
			if !c.Holds {
				state = "DOES NOT HOLD (" + c.Problem + ")"
			}
			fmt.Fprintf(e.stdout, "  %s: %s\n", c.Check, state)
		}
	}
	if r.LastGood != nil {
		fmt.Fprintf(e.stdout, "last checkpoint that holds: %s\n", r.LastGood.Check)
	} else if len(r.Checkpoints) > 0 {
		fmt.Fprintln(e.stdout, "no checkpoint holds")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(e.stdout, "PROBLEM %s: %s\n", f.Problem, f.Detail)
	}
}
