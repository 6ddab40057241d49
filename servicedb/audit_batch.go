package servicedb

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"depot"
)

// Group commit. Concurrent appends are gathered by one goroutine and written
// in a single transaction (one chain lock, one fsync), then each caller is
// answered. Invariant 4 holds: every Append still returns only after its own
// record is committed; only the cost of the commit is shared. Under no
// concurrency a batch has one record and behaves as a plain append.

// maxBatch bounds the records of one transaction.
const maxBatch = 128

type appendReq struct {
	ev     depot.AuditEvent
	meta   string
	change Change // applied in the record's transaction, or nil
	resp   chan appendResp
}

type appendResp struct {
	ev  depot.AuditEvent
	err error
}

// batcher owns the goroutine that writes batches.
type batcher struct {
	once, stopOnce sync.Once
	reqs           chan appendReq
	done           chan struct{}
}

// start starts the batch writer once.
func (db *DB) startBatcher() {
	db.batch.once.Do(func() {
		db.batch.reqs = make(chan appendReq)
		db.batch.done = make(chan struct{})
		go db.writeBatches()
	})
}

// stopBatcher stops the batch writer (at Close).
func (db *DB) stopBatcher() {
	db.startBatcher()
	db.batch.stopOnce.Do(func() { close(db.batch.done) })
}

// submit has req written by the batch writer and returns the stored record.
func (db *DB) submit(ctx context.Context, req appendReq) (depot.AuditEvent, error) {
	db.startBatcher()
	req.resp = make(chan appendResp, 1)
	select {
	case db.batch.reqs <- req:
	case <-db.batch.done:
		return depot.AuditEvent{}, depot.Errorf(depot.CodeUnavailable, "audit log closed")
	case <-ctx.Done():
		return depot.AuditEvent{}, depot.WrapError(depot.CodeUnavailable, "audit log unavailable", ctx.Err())
	}
	r := <-req.resp // once taken, the request is written or failed: wait for the outcome
	return r.ev, r.err
}

// writeBatches runs until the DB is closed. It takes one request, adds every
// request already waiting (up to maxBatch), and writes them together.
func (db *DB) writeBatches() {
	for {
		var req appendReq
		select {
		case req = <-db.batch.reqs:
		case <-db.batch.done:
			return
		}
		batch := []appendReq{req}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-db.batch.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		evs, err := db.appendTx(context.Background(), batch)
		if err != nil && len(batch) > 1 {
			// One bad record must not fail its neighbours: retry one by one.
			for _, r := range batch {
				evs, err := db.appendTx(context.Background(), []appendReq{r})
				r.resp <- result(evs, err)
				if err == nil {
					db.appended(evs[0].Seq)
				}
			}
			continue
		}
		for i, r := range batch {
			if err != nil {
				r.resp <- appendResp{err: err}
			} else {
				r.resp <- appendResp{ev: evs[i]}
			}
		}
		if err == nil {
			db.appended(evs[len(evs)-1].Seq)
		}
	}
}

func result(evs []depot.AuditEvent, err error) appendResp {
	if err != nil {
		return appendResp{err: err}
	}
	return appendResp{ev: evs[0]}
}

// appendTx writes batch as consecutive records of the chain in one
// transaction, serialised against every other writer, with their rows of
// the audit tree (audit_tree.go) and the changes the requests carry (each
// applied just before its record).
func (db *DB) appendTx(ctx context.Context, batch []appendReq) ([]depot.AuditEvent, error) {
	fail := func(err error) ([]depot.AuditEvent, error) {
		var de *depot.Error
		switch {
		case errors.As(err, &de):
			return nil, err // a change refused, with its own code
		case db.classify(err) == depot.CodeInvalid:
			return nil, db.wrap(err, "append audit record")
		}
		return nil, depot.WrapError(depot.CodeUnavailable, "audit log unavailable", err)
	}
	// Prepared before the transaction takes SQLite's only connection.
	head, err := db.stmts.get(ctx, selectChainHead)
	if err != nil {
		return fail(err)
	}
	insert, err := db.stmts.get(ctx, db.insertEventSQL())
	if err != nil {
		return fail(err)
	}
	treeInsert, err := db.stmts.get(ctx, insertTreeRow)
	if err != nil {
		return fail(err)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback() }()
	if db.d.lockAppend != "" {
		if _, err := tx.ExecContext(ctx, db.d.lockAppend); err != nil {
			return fail(err)
		}
	}
	seq, prev := int64(0), GenesisHash
	err = tx.StmtContext(ctx, head).QueryRowContext(ctx).Scan(&seq, &prev)
	if err != nil && err != sql.ErrNoRows && !notFound(err) {
		return fail(err)
	}
	if err != nil {
		seq, prev = 0, GenesisHash
	}
	tree, err := db.newTreeAppender(ctx, tx, treeInsert, seq, prev, true)
	if err != nil {
		return fail(err)
	}
	insertTx := tx.StmtContext(ctx, insert)
	out := make([]depot.AuditEvent, len(batch))
	for i, r := range batch {
		ev := r.ev
		if r.change != nil {
			if err := r.change(ctx, tx, ev.Time); err != nil {
				return fail(err)
			}
		}
		ev.Seq, ev.PrevHash = seq+1, prev
		ev.Hash = Hash(ev)
		if err := tree.insert(ctx, insertTx, ev.Hash, eventArgs(ev, r.meta)); err != nil {
			return fail(err)
		}
		seq, prev = ev.Seq, ev.Hash
		out[i] = ev
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	db.tree.set(tree.f)
	return out, nil
}

// SetAppendHook makes fn be called with the seq of the last record after
// every batch of appends this DB commits (nil removes it). fn runs on the
// batch writer's goroutine, after the appenders were answered: it must
// return at once (hand the seq to another goroutine, never wait), or it
// delays every later append. The audit checkpoint writer uses it to count
// records.
func (db *DB) SetAppendHook(fn func(lastSeq int64)) {
	if fn == nil {
		db.hook.Store(nil)
		return
	}
	db.hook.Store(&fn)
}

func (db *DB) appended(seq int64) {
	if fn := db.hook.Load(); fn != nil {
		(*fn)(seq)
	}
}
