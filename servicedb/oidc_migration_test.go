package servicedb

import (
	"context"
	"testing"

	"depot"
	"depot/servicedb/servicedbtest"
)

// Migration 4 rebuilds the SQLite audit table to widen its action list: an
// audit trail written before it must come out intact (same records, same
// hashes, still append-only), and the new actions must be accepted.
func TestOIDCMigrationKeepsTheChain(t *testing.T) {
	t.Parallel()
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ctx := context.Background()
		db, err := Open(ctx, e.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		p, err := db.provider()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpTo(ctx, 3); err != nil {
			t.Fatalf("migrate to 3: %v", err)
		}
		for i := range 5 {
			if _, err := db.Append(ctx, depot.AuditEvent{Action: depot.ActionDownload, Outcome: depot.OutcomeSuccess,
				Actor: "alice", Cohort: "c1", Key: "c1/f", DeclaredSize: -1, StoredSize: int64(i), ServerRole: "services",
				Metadata: map[string]string{"n": string(rune('a' + i))}}); err != nil {
				t.Fatal(err)
			}
		}
		_, headBefore, err := db.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Append(ctx, depot.AuditEvent{Action: depot.ActionSignIn, Outcome: depot.OutcomeSuccess, ServerRole: "services"}); err == nil {
			t.Fatal("before migration 4 the database accepted auth.sign_in")
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		seq, headAfter, err := db.Head(ctx)
		if err != nil || seq != 5 || headAfter != headBefore {
			t.Fatalf("head after migration: %d %s (before %s) %v", seq, headAfter, headBefore, err)
		}
		if r, err := db.VerifyChain(ctx); err != nil || !r.OK {
			t.Fatalf("VerifyChain after migration: %+v %v", r, err)
		}
		for _, a := range []depot.Action{depot.ActionSignIn, depot.ActionSignOut, depot.ActionSignInRefused, depot.ActionIdentityLinked} {
			if _, err := db.Append(ctx, depot.AuditEvent{Action: a, Outcome: depot.OutcomeSuccess, ServerRole: "services"}); err != nil {
				t.Fatalf("append %s after migration: %v", a, err)
			}
		}
		if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_events SET actor = 'x' WHERE seq = 1`); err == nil {
			t.Fatal("after migration the audit table accepts UPDATE")
		}
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM audit_events WHERE seq = 1`); err == nil {
			t.Fatal("after migration the audit table accepts DELETE")
		}
		if r, err := db.VerifyChain(ctx); err != nil || !r.OK || r.LastSeq != 9 {
			t.Fatalf("VerifyChain: %+v %v", r, err)
		}
	})
}
