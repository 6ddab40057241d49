package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/checkpoint"
	"depot/internal/config"
	"depot/servicedb"
)

// Proof bundles: depot audit export --proofs writes them, depot audit
// check-proof checks them with the public key alone (see
// checkpoint/proof.go for the format).

func auditCheckProofCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check-proof [BUNDLE]",
		Short: "check a proof bundle (depot audit export --proofs) with the public key alone; exit 6 if a record does not check",
		Args:  cobra.MaximumNArgs(1),
	}
	bind(cmd, config.AuditPublicKeyFile)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s := settings{e: e, cmd: cmd}
		if s.get(config.AuditPublicKeyFile) == "" {
			return usageErr("check-proof needs the public key: %s (or --%s)", config.AuditPublicKeyFile.Env, config.AuditPublicKeyFile.Flag())
		}
		v, err := publicKey(s)
		if err != nil {
			return err
		}
		in := e.stdin
		if len(args) == 1 && args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		res, err := checkpoint.CheckBundle(in, v)
		if err != nil {
			return &exitError{code: ExitIntegrity, err: err}
		}
		for _, f := range res.Failed {
			fmt.Fprintf(e.stdout, "NOT PROVEN: %v\n", f)
		}
		fmt.Fprintf(e.stdout, "%d of %d records proven included in the checkpoint of %d records signed %s by %s\n",
			res.Checked-len(res.Failed), res.Checked, res.Checkpoint.Size, res.Checkpoint.Time.Format(time.RFC3339Nano), res.Checkpoint.Origin)
		if len(res.Failed) > 0 {
			return &exitError{code: ExitIntegrity, err: fmt.Errorf("%d records do not check", len(res.Failed))}
		}
		return nil
	}
	return cmd
}

// exportProofs writes a proof bundle of the records f selects.
func exportProofs(e *env, cmd *cobra.Command, f servicedb.Filter, srcs []string) error {
	s := settings{e: e, cmd: cmd}
	return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
		msg, c, err := proofCheckpoint(ctx, s, db, srcs)
		if err != nil {
			return err
		}
		p, err := checkpoint.NewProver(ctx, db, c)
		if err != nil {
			return &exitError{code: ExitIntegrity, err: err}
		}
		enc := json.NewEncoder(e.stdout)
		if err := enc.Encode(checkpoint.BundleHeader{Checkpoint: string(msg)}); err != nil {
			return err
		}
		newer := 0
		err = eachEvent(ctx, db, f, func(ev depot.AuditEvent) error {
			if ev.Seq > c.Size {
				newer++
				return nil
			}
			pr, err := p.Prove(ctx, ev)
			if err != nil {
				return err
			}
			return enc.Encode(pr)
		})
		if newer > 0 {
			fmt.Fprintf(e.stderr, "%d records newer than the checkpoint (%d records) were left out; run depot audit checkpoint and export again to include them\n", newer, c.Size)
		}
		return err
	})
}

// proofCheckpoint returns the checkpoint a proof bundle is made against:
// the newest one in srcs signed by the key, or a new one signed now.
func proofCheckpoint(ctx context.Context, s settings, db *servicedb.DB, srcs []string) ([]byte, checkpoint.Checkpoint, error) {
	if len(srcs) == 0 {
		cs, err := checkpointSettings(ctx, s)
		if err != nil {
			return nil, checkpoint.Checkpoint{}, err
		}
		if cs == nil {
			return nil, checkpoint.Checkpoint{}, usageErr("--proofs needs --checkpoints SRC, or %s and a witness to sign a checkpoint now", config.AuditSigningKeyFile.Env)
		}
		w, err := checkpoint.New(checkpoint.Config{DB: db, Key: cs.key, Witnesses: cs.witnesses})
		if err != nil {
			return nil, checkpoint.Checkpoint{}, err
		}
		c, err := w.Checkpoint(ctx)
		if err != nil {
			return nil, c, err
		}
		msg, c, err := checkpoint.Sign(c, cs.key) // the same statement, as the witnesses got it
		return msg, c, err
	}
	v, err := publicKey(s)
	if err != nil {
		return nil, checkpoint.Checkpoint{}, err
	}
	notes, err := checkpointsFrom(ctx, srcs)
	if err != nil {
		return nil, checkpoint.Checkpoint{}, err
	}
	var best *checkpoint.Signed
	for _, n := range checkpoint.OpenAll(notes, v) {
		if n.Err == nil && (best == nil || n.Check.Size > best.Check.Size) {
			best = &n
		}
	}
	if best == nil {
		return nil, checkpoint.Checkpoint{}, &exitError{code: ExitIntegrity, err: errNoCheckpoint}
	}
	return best.Note, best.Check, nil
}

// errNoCheckpoint is the export error when no checkpoint can back proofs.
var errNoCheckpoint = errors.New("no checkpoint signed by the key matches this database")
