package servicedb

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"maps"
	"math/bits"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"depot"
)

// The Merkle tree over the audit trail. Its leaves are the records' chain
// hashes in seq order (leaf i is the record with seq i+1), hashed as RFC
// 6962 and golang.org/x/mod/sumdb/tlog define: a leaf is
// SHA-256(0x00 || the 32 bytes of the record's hash), an inner node
// SHA-256(0x01 || left || right). The tree of the first N records has a
// root (TreeHash) that a checkpoint signs; any record's inclusion in it,
// and any earlier tree's being a prefix of it, is proved with about log₂ N
// hashes (ProveRecord, ProveTree).
//
// The hashes tlog.StoredHashes returns when a record is appended are
// written with the record, in the same transaction, as one row of
// audit_tree (see migration 00004_audit_tree.sql). The tree is a cache of
// what the records imply: verification recomputes it from the records.

// LeafHash returns the Merkle leaf hash of the record whose chain hash is
// hash (64 lowercase hex digits): tlog.RecordHash of its 32 bytes.
func LeafHash(hash string) (tlog.Hash, error) {
	var raw [32]byte
	if len(hash) != 64 {
		return tlog.Hash{}, fmt.Errorf("audit hash %q is not 64 hex digits", hash)
	}
	if _, err := hex.Decode(raw[:], []byte(hash)); err != nil {
		return tlog.Hash{}, fmt.Errorf("audit hash %q is not hex: %w", hash, err)
	}
	return tlog.RecordHash(raw[:]), nil
}

const (
	insertTreeRow = `INSERT INTO audit_tree (seq, hashes) VALUES ($1, $2)`
	// insertEventWithTree writes a record and its tree row in one
	// statement: on PostgreSQL one round trip instead of two.
	insertEventWithTree = `WITH tree AS (INSERT INTO audit_tree (seq, hashes) VALUES ($1, $29)) ` + insertEvent
	selectTreeTop       = `SELECT COALESCE(MAX(seq), 0) FROM audit_tree`
	selectHashes        = `SELECT seq, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`
)

// frontier is the right edge of the tree of size records: the stored hash
// of every complete subtree that the next appends combine with, by stored
// hash index. head is the hash of record size.
type frontier struct {
	size  int64
	head  string
	nodes map[int64]tlog.Hash
}

// frontierIndexes returns the stored hash indexes of the right edge of the
// tree of size n: one complete subtree per bit set in n.
func frontierIndexes(n int64) []int64 {
	var out []int64
	for l := 0; l < 63; l++ {
		if n>>l&1 == 1 {
			out = append(out, tlog.StoredHashIndex(l, n>>l-1))
		}
	}
	return out
}

// treeCache keeps the frontier after this DB's last append, so that an
// append normally reads nothing back. It is valid only while the chain's
// head is the one it was computed for (another process may have appended,
// or the database been restored).
type treeCache struct {
	mu sync.Mutex
	f  *frontier
}

func (c *treeCache) get(size int64, head string) *frontier {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil || c.f.size != size || c.f.head != head {
		return nil
	}
	return c.f
}

func (c *treeCache) set(f *frontier) {
	c.mu.Lock()
	c.f = f
	c.mu.Unlock()
}

// insertEventSQL is the statement that appends one record: with its tree
// row on PostgreSQL (insertEventWithTree), alone on SQLite, where a second
// statement costs no round trip.
func (db *DB) insertEventSQL() string {
	if db.d.name == EnginePostgres {
		return insertEventWithTree
	}
	return insertEvent
}

// treeAppender adds records to the tree inside an append transaction.
type treeAppender struct {
	db       *DB
	tx       *sql.Tx
	rowStmt  *sql.Stmt // insertTreeRow on tx
	combined bool      // the record's statement writes the tree row too
	f        *frontier
}

// newTreeAppender returns an appender for the tree of size records whose
// last hash is head, reading the frontier back (and first catching the tree
// up with the records, for a trail written before the tree existed) unless
// cached is set and the cache holds it.
func (db *DB) newTreeAppender(ctx context.Context, tx *sql.Tx, insert *sql.Stmt, size int64, head string, cached bool) (*treeAppender, error) {
	a := &treeAppender{db: db, tx: tx, rowStmt: tx.StmtContext(ctx, insert), combined: db.insertEventSQL() == insertEventWithTree}
	if f := db.tree.get(size, head); cached && f != nil {
		a.f = &frontier{size: f.size, head: f.head, nodes: maps.Clone(f.nodes)}
		return a, nil
	}
	var top int64
	if err := tx.QueryRowContext(ctx, selectTreeTop).Scan(&top); err != nil {
		return nil, err
	}
	if top > size {
		return nil, depot.Errorf(depot.CodeUnavailable,
			"audit tree holds %d records but the trail only %d: records were removed from the end of the trail (see depot audit verify --checkpoints)", top, size)
	}
	f, err := readFrontier(ctx, tx, top)
	if err != nil {
		return nil, err
	}
	a.f = f
	for a.f.size < size { // catch up with records the tree does not hold yet
		rows, err := tx.QueryContext(ctx, selectHashes, a.f.size, min(1000, size-a.f.size))
		if err != nil {
			return nil, err
		}
		var hashes []string
		for rows.Next() {
			var seq int64
			var h string
			if err := rows.Scan(&seq, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if seq != a.f.size+int64(len(hashes))+1 {
				rows.Close()
				return nil, depot.Errorf(depot.CodeUnavailable, "audit record %d is missing: cannot build the audit tree", a.f.size+int64(len(hashes))+1)
			}
			hashes = append(hashes, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(hashes) == 0 {
			return nil, depot.Errorf(depot.CodeUnavailable, "audit record %d is missing: cannot build the audit tree", a.f.size+1)
		}
		for _, h := range hashes {
			if err := a.add(ctx, h); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// insert appends a record: it runs stmt (db.insertEventSQL() on the
// transaction) with the record's arguments and writes its tree row.
func (a *treeAppender) insert(ctx context.Context, stmt *sql.Stmt, hash string, args []any) error {
	blob, err := a.next(hash)
	if err != nil {
		return err
	}
	if a.combined {
		_, err = stmt.ExecContext(ctx, append(args, blob)...)
		return err
	}
	if _, err := stmt.ExecContext(ctx, args...); err != nil {
		return err
	}
	_, err = a.rowStmt.ExecContext(ctx, a.f.size, blob)
	return err
}

// add adds to the tree a record already in the trail.
func (a *treeAppender) add(ctx context.Context, hash string) error {
	blob, err := a.next(hash)
	if err != nil {
		return err
	}
	_, err = a.rowStmt.ExecContext(ctx, a.f.size, blob)
	return err
}

// next makes the record whose chain hash is hash the next leaf of the
// frontier and returns its tree row: the hashes tlog.StoredHashes gives.
func (a *treeAppender) next(hash string) ([]byte, error) {
	leaf, err := LeafHash(hash)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInvalid, "audit tree", err)
	}
	n := a.f.size
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := a.f.nodes[x]
			if !ok {
				return nil, fmt.Errorf("audit tree: hash %d is not on the frontier", x)
			}
			out[i] = h
		}
		return out, nil
	})
	hs, err := tlog.StoredHashesForRecordHash(n, leaf, read)
	if err != nil {
		return nil, err
	}
	blob := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		blob = append(blob, h[:]...)
	}
	// The new frontier: the subtrees that record n completed merge into
	// the top one; the others stay.
	base := tlog.StoredHashIndex(0, n)
	merged := bits.TrailingZeros64(uint64(n + 1))
	for l := 0; l < merged; l++ {
		delete(a.f.nodes, tlog.StoredHashIndex(l, (n>>l)-1))
	}
	a.f.nodes[base+int64(merged)] = hs[merged]
	a.f.size, a.f.head = n+1, hash
	return blob, nil
}

// readFrontier reads the frontier of the tree of size records from the
// database (through q, a transaction or the DB).
func readFrontier(ctx context.Context, q querier, size int64) (*frontier, error) {
	f := &frontier{size: size, nodes: map[int64]tlog.Hash{}}
	idx := frontierIndexes(size)
	hs, err := readHashes(ctx, q, idx)
	if err != nil {
		return nil, err
	}
	for i, x := range idx {
		f.nodes[x] = hs[i]
	}
	if size > 0 {
		if err := q.QueryRowContext(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, size).Scan(&f.head); err != nil {
			return nil, err
		}
	} else {
		f.head = GenesisHash
	}
	return f, nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readHashes reads the stored hashes at the given stored hash indexes. The
// hash (level l, index k) was stored with record (k+1)·2^l, at position l
// of its row.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	type at struct {
		seq int64
		pos int
	}
	want := make([]at, len(indexes))
	seqs := map[int64]bool{}
	for i, x := range indexes {
		l, k := tlog.SplitStoredHashIndex(x)
		want[i] = at{seq: (k + 1) << l, pos: l}
		seqs[want[i].seq] = true
	}
	var b strings.Builder
	b.WriteString(`SELECT seq, hashes FROM audit_tree WHERE seq IN (`)
	first := true
	for s := range seqs {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(strconv.FormatInt(s, 10))
	}
	b.WriteString(")")
	rows, err := q.QueryContext(ctx, b.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[int64][]byte, len(seqs))
	for rows.Next() {
		var seq int64
		var blob []byte
		if err := rows.Scan(&seq, &blob); err != nil {
			return nil, err
		}
		got[seq] = blob
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i, w := range want {
		blob := got[w.seq]
		if len(blob) < (w.pos+1)*tlog.HashSize {
			return nil, depot.Errorf(depot.CodeUnavailable, "audit tree: the hashes of record %d are missing or short", w.seq)
		}
		copy(out[i][:], blob[w.pos*tlog.HashSize:])
	}
	return out, nil
}
