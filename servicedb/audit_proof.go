package servicedb

import (
	"context"
	"database/sql"

	"golang.org/x/mod/sumdb/tlog"

	"depot"
)

// TreeHead is the Merkle tree of the whole audit trail as the database
// stores it: what a checkpoint signs.
type TreeHead struct {
	Size     int64     // records in the tree (the last seq)
	Root     tlog.Hash // tlog.TreeHash of the first Size records
	HeadHash string    // chain hash of record Size; GenesisHash when empty
}

// TreeHead reads the current tree head: the last record and the root of the
// tree over every record up to it, from about log₂ N stored hashes.
func (db *DB) TreeHead(ctx context.Context) (TreeHead, error) {
	size, head, err := db.Head(ctx)
	if err != nil {
		return TreeHead{}, err
	}
	root, err := db.TreeHash(ctx, size)
	if err != nil {
		return TreeHead{}, err
	}
	return TreeHead{Size: size, Root: root, HeadHash: head}, nil
}

// TreeHash returns the root of the tree of the first size records, from
// the stored hashes.
func (db *DB) TreeHash(ctx context.Context, size int64) (tlog.Hash, error) {
	h, err := tlog.TreeHash(size, db.hashReader(ctx))
	if err != nil {
		return tlog.Hash{}, db.wrap(err, "read the audit tree")
	}
	return h, nil
}

// ProveRecord returns the proof that record seq is leaf seq-1 of the tree
// of the first size records (tlog.CheckRecord checks it against that tree's
// root and the record's LeafHash).
func (db *DB) ProveRecord(ctx context.Context, seq, size int64) (tlog.RecordProof, error) {
	if seq < 1 || seq > size {
		return nil, depot.Errorf(depot.CodeInvalid, "record %d is not in a tree of %d records", seq, size)
	}
	p, err := tlog.ProveRecord(size, seq-1, db.hashReader(ctx))
	if err != nil {
		return nil, db.wrap(err, "prove an audit record")
	}
	return p, nil
}

// ProveTree returns the proof that the tree of the first oldSize records is
// a prefix of the tree of the first size records (tlog.CheckTree checks it
// against both roots).
func (db *DB) ProveTree(ctx context.Context, size, oldSize int64) (tlog.TreeProof, error) {
	if oldSize < 1 || oldSize > size {
		return nil, depot.Errorf(depot.CodeInvalid, "a tree of %d records is not a prefix of one of %d", oldSize, size)
	}
	p, err := tlog.ProveTree(size, oldSize, db.hashReader(ctx))
	if err != nil {
		return nil, db.wrap(err, "prove the audit tree")
	}
	return p, nil
}

// StoredLeaf is the leaf hash the tree stored for a record when it was
// appended.
type StoredLeaf struct {
	Seq  int64
	Hash tlog.Hash
}

// StoredLeaves returns the stored leaf hashes of up to limit records after
// seq afterSeq, in seq order. Verification compares them with the leaves it
// recomputes from the records, to name a record changed after it was
// appended when the tree was left alone.
func (db *DB) StoredLeaves(ctx context.Context, afterSeq int64, limit int) ([]StoredLeaf, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT seq, hashes FROM audit_tree WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limitOr(limit))
	if err != nil {
		return nil, db.wrap(err, "read the audit tree")
	}
	defer rows.Close()
	var out []StoredLeaf
	for rows.Next() {
		var l StoredLeaf
		var blob []byte
		if err := rows.Scan(&l.Seq, &blob); err != nil {
			return nil, db.wrap(err, "read the audit tree")
		}
		copy(l.Hash[:], blob) // a short blob leaves zeros: a mismatch
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap(err, "read the audit tree")
	}
	return out, nil
}

// SyncTree adds to the tree every record it does not hold yet (a trail
// written before the tree existed), in transactions of up to 1000 records
// serialised with appends. Migrate calls it; it is idempotent.
func (db *DB) SyncTree(ctx context.Context) error {
	last := int64(-1)
	for {
		var top, head int64
		err := db.sql.QueryRowContext(ctx, selectTreeTop).Scan(&top)
		if err == nil {
			err = db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_events`).Scan(&head)
		}
		if err != nil {
			return db.wrap(err, "sync the audit tree")
		}
		if top >= head {
			return nil
		}
		if top == last {
			return depot.Errorf(depot.CodeInternal, "audit tree: no progress at record %d", top)
		}
		last = top
		if err := db.syncTreeBatch(ctx, 1000); err != nil {
			return err
		}
	}
}

// syncTreeBatch adds up to n records to the tree in one transaction. What
// the tree and the trail hold is read under the append lock: appends that
// committed after SyncTree looked (each with its tree row) must not be
// mistaken for a tree longer than the trail.
func (db *DB) syncTreeBatch(ctx context.Context, n int64) error {
	insert, err := db.stmts.get(ctx, insertTreeRow)
	if err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	defer func() { _ = tx.Rollback() }()
	if db.d.lockAppend != "" {
		if _, err := tx.ExecContext(ctx, db.d.lockAppend); err != nil {
			return db.wrap(err, "sync the audit tree")
		}
	}
	var top, head int64
	if err := tx.QueryRowContext(ctx, selectTreeTop).Scan(&top); err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_events`).Scan(&head); err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	if top >= head {
		return nil // appends brought it up to date meanwhile (or the trail was cut: newTreeAppender of an append says so)
	}
	upTo := min(head, top+n)
	var hash string
	err = tx.QueryRowContext(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, upTo).Scan(&hash)
	if err != nil && err != sql.ErrNoRows {
		return db.wrap(err, "sync the audit tree")
	}
	if err == sql.ErrNoRows {
		return depot.Errorf(depot.CodeUnavailable, "audit record %d is missing: cannot build the audit tree", upTo)
	}
	a, err := db.newTreeAppender(ctx, tx, insert, upTo, hash, false)
	if err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	if err := tx.Commit(); err != nil {
		return db.wrap(err, "sync the audit tree")
	}
	if a.f.size == upTo {
		db.tree.set(a.f)
	}
	return nil
}

// hashReader reads stored hashes for tlog.
func (db *DB) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return readHashes(ctx, db.sql, idx)
	})
}
