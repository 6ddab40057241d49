// Package checkpointtest tampers with an audit trail the way someone with
// write access to the database would, covering their tracks as well as
// depot's own code allows: every hash recomputed and the stored Merkle tree
// rebuilt. Tests use it to show what checkpoints catch. It is for tests
// only.
package checkpointtest

import (
	"context"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

// DropTriggers removes the append-only triggers of the audit tables.
func DropTriggers(t testing.TB, db *servicedb.DB) {
	t.Helper()
	stmts := []string{"DROP TRIGGER IF EXISTS audit_events_no_update", "DROP TRIGGER IF EXISTS audit_events_no_delete",
		"DROP TRIGGER IF EXISTS audit_tree_no_update", "DROP TRIGGER IF EXISTS audit_tree_no_delete"}
	if db.Engine() == servicedb.EnginePostgres {
		stmts = []string{"DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
			"DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
			"DROP TRIGGER IF EXISTS audit_tree_append_only ON audit_tree",
			"DROP TRIGGER IF EXISTS audit_tree_no_truncate ON audit_tree"}
	}
	for _, s := range stmts {
		exec(t, db, s)
	}
}

// RewriteRecord changes record seq with change, recomputes the hash of it
// and of every later record (the chain stays intact), and rebuilds the
// stored tree from seq on. Only checkpoints can tell.
func RewriteRecord(t testing.TB, db *servicedb.DB, seq int64, change func(*depot.AuditEvent)) {
	t.Helper()
	RewriteChain(t, db, seq, change)
	rebuildTree(t, db, seq)
}

// RewriteChain is RewriteRecord that leaves the stored tree as it was.
func RewriteChain(t testing.TB, db *servicedb.DB, seq int64, change func(*depot.AuditEvent)) {
	t.Helper()
	DropTriggers(t, db)
	evs := events(t, db, seq-1)
	if len(evs) == 0 || evs[0].Seq != seq {
		t.Fatalf("checkpointtest: no record %d", seq)
	}
	change(&evs[0])
	prev := evs[0].PrevHash
	exec(t, db, "DELETE FROM audit_events WHERE seq >= $1", seq)
	for i := range evs {
		evs[i].PrevHash = prev
		evs[i].Hash = servicedb.Hash(evs[i])
		insert(t, db, evs[i])
		prev = evs[i].Hash
	}
}

// AppendForged appends ev as the next record, correctly chained and with
// its tree row, through SQL: no trigger stands in the way of an insert.
// ev.Time is kept (a forgery chooses its date).
func AppendForged(t testing.TB, db *servicedb.DB, ev depot.AuditEvent) depot.AuditEvent {
	t.Helper()
	seq, head, err := db.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev.Seq, ev.PrevHash = seq+1, head
	ev.Time = time.UnixMilli(ev.Time.UnixMilli()).UTC()
	ev.Hash = servicedb.Hash(ev)
	insert(t, db, ev)
	if err := db.SyncTree(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ev
}

// CutTail removes the last n records and their tree rows.
func CutTail(t testing.TB, db *servicedb.DB, n int64) {
	t.Helper()
	seq, _, err := db.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	DropTriggers(t, db)
	exec(t, db, "DELETE FROM audit_events WHERE seq > $1", seq-n)
	exec(t, db, "DELETE FROM audit_tree WHERE seq > $1", seq-n)
}

// Snapshot copies the audit tables aside; the function it returns puts
// them back as they were, as a restore of an older backup of the database
// would.
func Snapshot(t testing.TB, db *servicedb.DB) (restore func()) {
	t.Helper()
	exec(t, db, "CREATE TABLE snap_audit_events AS SELECT * FROM audit_events")
	exec(t, db, "CREATE TABLE snap_audit_tree AS SELECT * FROM audit_tree")
	return func() {
		t.Helper()
		DropTriggers(t, db)
		exec(t, db, "DELETE FROM audit_events")
		exec(t, db, "DELETE FROM audit_tree")
		exec(t, db, "INSERT INTO audit_events SELECT * FROM snap_audit_events")
		exec(t, db, "INSERT INTO audit_tree SELECT * FROM snap_audit_tree")
		exec(t, db, "DROP TABLE snap_audit_events")
		exec(t, db, "DROP TABLE snap_audit_tree")
	}
}

// rebuildTree replaces the stored tree rows from seq on with the ones
// depot would compute for the records as they now stand.
func rebuildTree(t testing.TB, db *servicedb.DB, seq int64) {
	t.Helper()
	exec(t, db, "DELETE FROM audit_tree WHERE seq >= $1", seq)
	if err := db.SyncTree(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func events(t testing.TB, db *servicedb.DB, after int64) []depot.AuditEvent {
	t.Helper()
	var out []depot.AuditEvent
	for {
		evs, err := db.Events(context.Background(), servicedb.Filter{AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if len(evs) < 1000 {
			return out
		}
		after = evs[len(evs)-1].Seq
	}
}

func exec(t testing.TB, db *servicedb.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL().ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// insert writes ev as a row, every column as Append would.
func insert(t testing.TB, db *servicedb.DB, ev depot.AuditEvent) {
	t.Helper()
	meta, err := servicedb.MetadataJSON(ev.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(p *time.Time) any {
		if p == nil {
			return nil
		}
		return p.UnixMilli()
	}
	exec(t, db, `INSERT INTO audit_events (seq, time_ms, action, outcome, error_code, actor,
		auth_method, cohort, storage_key, file_name, upload_id, declared_size, bytes_transferred,
		stored_size, sha256, server_role, web_node, correlation_id, client_ip, user_agent,
		stream_start_ms, stream_complete_ms, duration_ms, file_class, cleanup_scheduled_for_ms,
		metadata, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
		$13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)`,
		ev.Seq, ev.Time.UnixMilli(), string(ev.Action), string(ev.Outcome), ev.ErrorCode, ev.Actor,
		ev.AuthMethod, ev.Cohort, ev.Key, ev.FileName, ev.UploadID, ev.DeclaredSize, ev.BytesTransferred,
		ev.StoredSize, ev.SHA256, ev.ServerRole, ev.WebNode, ev.CorrelationID, ev.ClientIP, ev.UserAgent,
		ms(ev.StreamStart), ms(ev.StreamComplete), ev.DurationMS, string(ev.FileClass), ms(ev.CleanupScheduledFor),
		meta, ev.PrevHash, ev.Hash)
}
