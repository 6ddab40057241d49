package servicedb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"depot"
)

var _ depot.AuditLog = (*DB)(nil)

// eventColumns is the column list of audit_events in scanEvent order.
const eventColumns = `seq, time_ms, action, outcome, error_code, actor, auth_method, cohort,
	storage_key, file_name, upload_id, declared_size, bytes_transferred, stored_size, sha256,
	server_role, web_node, correlation_id, client_ip, user_agent, stream_start_ms,
	stream_complete_ms, duration_ms, file_class, cleanup_scheduled_for_ms, metadata,
	prev_hash, hash`

// selectChainHead reads the last record of the chain.
const selectChainHead = `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`

// insertEvent appends one record; its arguments come from eventArgs.
const insertEvent = `INSERT INTO audit_events (` + eventColumns + `) VALUES ($1, $2, $3, $4,
	$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
	$24, $25, $26, $27, $28)`

// Append writes ev as the next record of the audit trail and returns it as
// stored. Append assigns Seq (the last seq + 1), PrevHash (the last record's
// hash, GenesisHash for the first) and Hash (see Canonical); values the
// caller put there are ignored. A zero Time becomes now. All times are stored
// in UTC truncated to the millisecond; string fields are made valid UTF-8
// without NUL and cut to 4096 bytes (see clean).
//
// Appends are serialised across connections and processes (PostgreSQL: a
// transaction-scoped advisory lock; SQLite: BEGIN IMMEDIATE), so the chain
// never forks. Concurrent appends of one DB share a transaction (group
// commit, see batch.go). Append returns only after its record committed. An
// Action outside depot.Actions, an unknown Outcome or FileClass is
// CodeInvalid; any failure to write is CodeUnavailable, so the audited
// operation must fail.
func (db *DB) Append(ctx context.Context, ev depot.AuditEvent) (depot.AuditEvent, error) {
	req, err := db.appendRequest(ev)
	if err != nil {
		return depot.AuditEvent{}, err
	}
	return db.submit(ctx, req)
}

// AppendWith is Append that also applies change in the same transaction:
// the record and the change are committed both or neither, with one commit
// (shared with concurrent appends). A change that refuses returns its
// *depot.Error (a failed precondition, a hold, a missing file) and nothing
// is written; a database failure is CodeUnavailable.
func (db *DB) AppendWith(ctx context.Context, ev depot.AuditEvent, change Change) (depot.AuditEvent, error) {
	req, err := db.appendRequest(ev)
	if err != nil {
		return depot.AuditEvent{}, err
	}
	req.change = change
	return db.submit(ctx, req)
}

// appendRequest validates ev and returns the batch request that writes it.
func (db *DB) appendRequest(ev depot.AuditEvent) (appendReq, error) {
	ev, err := db.normalize(ev)
	if err != nil {
		return appendReq{}, err
	}
	meta, err := MetadataJSON(ev.Metadata)
	if err != nil {
		return appendReq{}, depot.WrapError(depot.CodeInvalid, "audit metadata", err)
	}
	return appendReq{ev: ev, meta: meta}, nil
}

// normalize validates ev and brings it to its stored form.
func (db *DB) normalize(ev depot.AuditEvent) (depot.AuditEvent, error) {
	if !slices.Contains(depot.Actions, ev.Action) {
		return ev, depot.Errorf(depot.CodeInvalid, "unknown audit action")
	}
	switch ev.Outcome {
	case depot.OutcomeSuccess, depot.OutcomeFailure, depot.OutcomeDenied:
	default:
		return ev, depot.Errorf(depot.CodeInvalid, "unknown audit outcome")
	}
	if ev.FileClass != "" && !ev.FileClass.Valid() {
		return ev, depot.Errorf(depot.CodeInvalid, "unknown file class")
	}
	if ev.Time.IsZero() {
		ev.Time = db.now()
	} else {
		ev.Time = fromMS(ev.Time.UnixMilli())
	}
	ev.StreamStart = normTime(ev.StreamStart)
	ev.StreamComplete = normTime(ev.StreamComplete)
	ev.CleanupScheduledFor = normTime(ev.CleanupScheduledFor)
	for _, s := range []*string{&ev.ErrorCode, &ev.Actor, &ev.AuthMethod, &ev.Cohort, &ev.Key,
		&ev.FileName, &ev.UploadID, &ev.SHA256, &ev.ServerRole, &ev.WebNode, &ev.CorrelationID,
		&ev.ClientIP, &ev.UserAgent} {
		*s = clean(*s)
	}
	if len(ev.Metadata) == 0 {
		ev.Metadata = nil
	} else {
		if _, ok := ev.Metadata[NonCanonicalMetadata]; ok {
			return ev, depot.Errorf(depot.CodeInvalid, "audit metadata key %s is reserved", NonCanonicalMetadata)
		}
		m := make(map[string]string, len(ev.Metadata))
		for k, v := range ev.Metadata {
			m[clean(k)] = clean(v)
		}
		ev.Metadata = m
	}
	return ev, nil
}

// eventArgs returns the insertEvent arguments for ev.
func eventArgs(ev depot.AuditEvent, meta string) []any {
	return []any{ev.Seq, toMS(ev.Time), string(ev.Action), string(ev.Outcome), ev.ErrorCode,
		ev.Actor, ev.AuthMethod, ev.Cohort, ev.Key, ev.FileName, ev.UploadID, ev.DeclaredSize,
		ev.BytesTransferred, ev.StoredSize, ev.SHA256, ev.ServerRole, ev.WebNode,
		ev.CorrelationID, ev.ClientIP, ev.UserAgent, msOrNil(ev.StreamStart),
		msOrNil(ev.StreamComplete), ev.DurationMS, string(ev.FileClass),
		msOrNil(ev.CleanupScheduledFor), meta, ev.PrevHash, ev.Hash}
}

// Filter selects audit records. Zero fields do not filter.
type Filter struct {
	Cohort        string
	Actor         string
	Action        depot.Action
	KeyPrefix     string // records whose storage key starts with it (bytewise)
	UploadID      string
	CorrelationID string
	Since         time.Time // Time >= Since
	Until         time.Time // Time < Until
	AfterSeq      int64     // Seq > AfterSeq: the cursor for the next page
	Limit         int       // at most this many; <= 0 means DefaultLimit
}

// DefaultLimit is the page size of Events and ListFiles when none is given.
const DefaultLimit = 1000

// Events returns the records matching f in seq order. To read everything,
// page with AfterSeq set to the last Seq returned until a page is shorter
// than the limit.
func (db *DB) Events(ctx context.Context, f Filter) ([]depot.AuditEvent, error) {
	var q query
	q.where("seq > $?", f.AfterSeq)
	if f.Cohort != "" {
		q.where("cohort = $?", f.Cohort)
	}
	if f.Actor != "" {
		q.where("actor = $?", f.Actor)
	}
	if f.Action != "" {
		q.where("action = $?", string(f.Action))
	}
	if f.KeyPrefix != "" {
		q.where("storage_key >= $?", f.KeyPrefix)
		q.where("substr(storage_key, 1, length(CAST($? AS TEXT))) = $?", f.KeyPrefix)
	}
	if f.UploadID != "" {
		q.where("upload_id = $?", f.UploadID)
	}
	if f.CorrelationID != "" {
		q.where("correlation_id = $?", f.CorrelationID)
	}
	if !f.Since.IsZero() {
		q.where("time_ms >= $?", toMS(f.Since))
	}
	if !f.Until.IsZero() {
		q.where("time_ms < $?", toMS(f.Until))
	}
	stmt, args := q.build("SELECT "+eventColumns+" FROM audit_events", "seq", limitOr(f.Limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "read audit records")
	}
	defer rows.Close()
	var out []depot.AuditEvent
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, db.wrap(err, "read audit records")
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap(err, "read audit records")
	}
	return out, nil
}

// Head returns the seq and hash of the last audit record: (0, GenesisHash)
// for an empty trail. Recording the head elsewhere (a log, a backup
// manifest) lets a later VerifyChain detect records cut from the end.
func (db *DB) Head(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := db.stmts.queryRow(ctx, selectChainHead).Scan(&seq, &hash)
	if notFound(err) {
		return 0, GenesisHash, nil
	}
	if err != nil {
		return 0, "", db.wrap(err, "read audit head")
	}
	return seq, hash, nil
}

// scanEvent reads one row selected with eventColumns.
func scanEvent(rows *sql.Rows) (depot.AuditEvent, error) {
	var (
		ev                                depot.AuditEvent
		timeMS                            int64
		action, outcome, class, meta      string
		streamStart, streamEnd, cleanupAt sql.NullInt64
	)
	err := rows.Scan(&ev.Seq, &timeMS, &action, &outcome, &ev.ErrorCode, &ev.Actor,
		&ev.AuthMethod, &ev.Cohort, &ev.Key, &ev.FileName, &ev.UploadID, &ev.DeclaredSize,
		&ev.BytesTransferred, &ev.StoredSize, &ev.SHA256, &ev.ServerRole, &ev.WebNode,
		&ev.CorrelationID, &ev.ClientIP, &ev.UserAgent, &streamStart, &streamEnd,
		&ev.DurationMS, &class, &cleanupAt, &meta, &ev.PrevHash, &ev.Hash)
	if err != nil {
		return ev, err
	}
	ev.Time = fromMS(timeMS)
	ev.Action, ev.Outcome, ev.FileClass = depot.Action(action), depot.Outcome(outcome), depot.Class(class)
	ev.StreamStart, ev.StreamComplete = timeOrNil(streamStart), timeOrNil(streamEnd)
	ev.CleanupScheduledFor = timeOrNil(cleanupAt)
	if meta != "{}" {
		m, err := ParseMetadata(meta)
		if err != nil {
			// Kept visible rather than failing the read: the record's hash
			// will not verify (the marker is part of what is hashed), and
			// VerifyChain reports it; an export shows the stored text.
			m = map[string]string{NonCanonicalMetadata: meta}
		}
		ev.Metadata = m
	}
	return ev, nil
}

// query builds a SELECT with numbered placeholders: each "$?" in a condition
// becomes the next $N, and every "$?" of one condition binds the same value.
type query struct {
	conds []string
	args  []any
}

func (q *query) where(cond string, arg any) {
	q.args = append(q.args, arg)
	q.conds = append(q.conds, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(q.args))))
}

// always adds a condition without an argument.
func (q *query) always(cond string) { q.conds = append(q.conds, cond) }

// build returns base + WHERE … ORDER BY order LIMIT limit, and the arguments.
func (q *query) build(base, order string, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(base)
	if len(q.conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(q.conds, " AND "))
	}
	q.args = append(q.args, limit)
	fmt.Fprintf(&b, " ORDER BY %s LIMIT $%d", order, len(q.args))
	return b.String(), q.args
}

// limitOr returns n, or DefaultLimit when n <= 0.
func limitOr(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return n
}
