package servicedb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// eachEngine runs fn on a fresh, migrated database on every engine.
func eachEngine(t *testing.T, fn func(t *testing.T, db *servicedb.DB)) {
	t.Helper()
	t.Parallel()
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		t.Parallel()
		fn(t, openDB(t, e.URL))
	})
}

// eachEngineURL runs fn with a fresh, empty database URL on every engine.
func eachEngineURL(t *testing.T, fn func(t *testing.T, e servicedbtest.EngineURL)) {
	t.Helper()
	t.Parallel()
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		t.Parallel()
		fn(t, e)
	})
}

// openDB opens and migrates url, closing it when the test ends.
func openDB(t testing.TB, url string) *servicedb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code depot.Code) {
	t.Helper()
	if got := depot.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
	var de *depot.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a *depot.Error", err)
	}
}

// sampleEvent returns an upload.completed event with every field set.
func sampleEvent(i int) depot.AuditEvent {
	start := time.Date(2025, 3, 1, 12, 0, i%60, 123_000_000, time.UTC)
	end := start.Add(1500 * time.Millisecond)
	cleanup := start.Add(24 * time.Hour)
	return depot.AuditEvent{
		Time:                start.Add(2 * time.Second),
		Action:              depot.ActionUploadCompleted,
		Outcome:             depot.OutcomeSuccess,
		Actor:               "alice",
		AuthMethod:          "token",
		Cohort:              "c1",
		Key:                 fmt.Sprintf("c1/raw/table-%03d.csv", i),
		FileName:            fmt.Sprintf("table %d.csv", i),
		UploadID:            fmt.Sprintf("up-%d", i),
		DeclaredSize:        int64(1000 + i),
		BytesTransferred:    int64(1000 + i),
		StoredSize:          int64(1000 + i),
		SHA256:              "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ServerRole:          "services",
		WebNode:             "web-1",
		CorrelationID:       fmt.Sprintf("corr-%d", i),
		ClientIP:            "192.0.2.7",
		UserAgent:           "depot-cli/1.0",
		StreamStart:         &start,
		StreamComplete:      &end,
		DurationMS:          1500,
		FileClass:           depot.Temporary,
		CleanupScheduledFor: &cleanup,
		Metadata:            map[string]string{"rows": fmt.Sprint(i), "format": "csv"},
	}
}

// appendN appends n sample events and returns them as stored.
func appendN(t *testing.T, db *servicedb.DB, n int) []depot.AuditEvent {
	t.Helper()
	out := make([]depot.AuditEvent, 0, n)
	for i := range n {
		ev, err := db.Append(context.Background(), sampleEvent(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out = append(out, ev)
	}
	return out
}

// verifyOK fails unless the chain verifies with want records.
func verifyOK(t *testing.T, db *servicedb.DB, want int64) servicedb.ChainReport {
	t.Helper()
	r, err := db.VerifyChain(context.Background())
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	if !r.OK || r.Checked != want || r.LastSeq != want {
		t.Fatalf("VerifyChain = %+v, want OK with %d records", r, want)
	}
	return r
}

// dropAuditTriggers removes the append-only triggers, as an attacker with
// write access to the database would.
func dropAuditTriggers(t *testing.T, db *servicedb.DB) {
	t.Helper()
	stmts := []string{"DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"}
	if db.Engine() == servicedb.EnginePostgres {
		stmts = []string{"DROP TRIGGER audit_events_append_only ON audit_events",
			"DROP TRIGGER audit_events_no_truncate ON audit_events"}
	}
	for _, s := range stmts {
		mustExec(t, db, s)
	}
}

// mustExec runs raw SQL.
func mustExec(t *testing.T, db *servicedb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL().ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rawInsert writes ev into audit_events directly, bypassing Append.
func rawInsert(t *testing.T, db *servicedb.DB, ev depot.AuditEvent) {
	t.Helper()
	meta := "{}"
	if len(ev.Metadata) > 0 {
		meta = fmt.Sprintf(`{"format":%q,"rows":%q}`, ev.Metadata["format"], ev.Metadata["rows"])
	}
	ms := func(p *time.Time) any {
		if p == nil {
			return nil
		}
		return p.UnixMilli()
	}
	mustExec(t, db, `INSERT INTO audit_events (seq, time_ms, action, outcome, error_code, actor,
		auth_method, cohort, storage_key, file_name, upload_id, declared_size, bytes_transferred,
		stored_size, sha256, server_role, web_node, correlation_id, client_ip, user_agent,
		stream_start_ms, stream_complete_ms, duration_ms, file_class, cleanup_scheduled_for_ms,
		metadata, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
		$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)`,
		ev.Seq, ev.Time.UnixMilli(), string(ev.Action), string(ev.Outcome), ev.ErrorCode, ev.Actor,
		ev.AuthMethod, ev.Cohort, ev.Key, ev.FileName, ev.UploadID, ev.DeclaredSize,
		ev.BytesTransferred, ev.StoredSize, ev.SHA256, ev.ServerRole, ev.WebNode, ev.CorrelationID,
		ev.ClientIP, ev.UserAgent, ms(ev.StreamStart), ms(ev.StreamComplete), ev.DurationMS,
		string(ev.FileClass), ms(ev.CleanupScheduledFor), meta, ev.PrevHash, ev.Hash)
}
