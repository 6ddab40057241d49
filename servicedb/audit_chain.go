package servicedb

import (
	"context"
	"fmt"

	"depot"
)

// Problems named by ChainReport.Problem.
const (
	ProblemModified  = "modified"  // a record's content no longer matches its hash, or it was re-hashed
	ProblemDeleted   = "deleted"   // a record is missing (a seq gap, or later records renumbered)
	ProblemInserted  = "inserted"  // a record that was never appended sits in the chain
	ProblemReordered = "reordered" // an intact record sits at another record's position
)

// ChainReport is the result of VerifyChain.
type ChainReport struct {
	Checked  int64  // records read, including the first bad one
	OK       bool   // the whole chain verified
	FirstBad int64  // seq (position) of the first record that is not the one appended there; 0 when OK
	Problem  string // one of the Problem constants; "" when OK
	Detail   string // one sentence for an operator; "" when OK
	LastSeq  int64  // when OK: seq of the last record, 0 for an empty trail
	LastHash string // when OK: its hash, GenesisHash for an empty trail
}

// verifyBatch is how many records VerifyChain reads per query.
const verifyBatch = 1000

// maxOriginSearch bounds the positions tried when looking for where a
// misplaced record was originally appended.
const maxOriginSearch = 2_000_000

// VerifyChain reads the whole audit trail in seq order and recomputes every
// hash. The chain is intact when record n has Seq n, PrevHash equal to the
// Hash of record n-1 (GenesisHash for n = 1), and Hash equal to
// Hash(record). VerifyChain stops at the first record that breaks this and
// names it:
//
//   - deleted:   seq n is missing (a gap), or the record at n was appended at
//     a later position and its predecessor no longer exists (records removed
//     and the rest renumbered). FirstBad = n, the first missing position.
//   - modified:  the record at n hashes to something else and is not an
//     intact record from another position; or it verifies on its own but
//     record n+1 says n's hash was different (n was changed and re-hashed);
//     or its stored metadata is not exactly the canonical encoding of what
//     it parses to (see ParseMetadata), whatever its hash.
//   - inserted:  the record at n was appended at m < n, so the record now at
//     m was inserted (FirstBad = m); or the record at n verifies on its own
//     but names another existing record as predecessor (forged, FirstBad =
//     n); or a duplicate seq.
//   - reordered: the record at n is intact but was appended at another
//     position (e.g. two records swapped). FirstBad = n.
//
// Records cut from the end of the trail leave a valid shorter chain; compare
// LastSeq/LastHash with a head recorded elsewhere (see Head) to catch that.
// Errors reading the database are returned as errors, not as a report.
func (db *DB) VerifyChain(ctx context.Context) (ChainReport, error) {
	var r ChainReport
	want, prev := int64(1), GenesisHash
	for {
		batch, err := db.Events(ctx, Filter{AfterSeq: want - 1, Limit: verifyBatch})
		if err != nil {
			return ChainReport{}, err
		}
		for _, ev := range batch {
			r.Checked++
			if ev.Seq == want && ev.PrevHash == prev && Hash(ev) == ev.Hash && !nonCanonical(ev) {
				want, prev = want+1, ev.Hash
				continue
			}
			if err := db.diagnose(ctx, ev, want, prev, &r); err != nil {
				return ChainReport{}, err
			}
			return r, nil
		}
		if len(batch) < verifyBatch {
			break
		}
	}
	r.OK, r.LastSeq, r.LastHash = true, want-1, prev
	return r, nil
}

// nonCanonical reports whether ev was read from a row whose metadata is not
// in canonical form (see ParseMetadata).
func nonCanonical(ev depot.AuditEvent) bool {
	_, bad := ev.Metadata[NonCanonicalMetadata]
	return bad
}

// diagnose fills r for ev, the first record that does not continue the
// verified chain; want is the seq it should have and prev the hash of the
// last verified record.
func (db *DB) diagnose(ctx context.Context, ev depot.AuditEvent, want int64, prev string, r *ChainReport) error {
	set := func(first int64, problem, format string, args ...any) {
		r.FirstBad, r.Problem, r.Detail = first, problem, fmt.Sprintf(format, args...)
	}
	switch {
	case ev.Seq > want:
		if ev.Seq == want+1 {
			set(want, ProblemDeleted, "record %d is missing (the next record is %d)", want, ev.Seq)
		} else {
			set(want, ProblemDeleted, "records %d to %d are missing (the next record is %d)", want, ev.Seq-1, ev.Seq)
		}
		return nil
	case ev.Seq < want:
		set(ev.Seq, ProblemInserted, "record %d appears twice", ev.Seq)
		return nil
	}
	if nonCanonical(ev) {
		// Stored metadata must be exactly the canonical encoding of what
		// it parses to, whatever the hash says: a duplicated key reads
		// one way in SQL and another in depot.
		set(want, ProblemModified, "record %d: its stored metadata is not in canonical form (a duplicated or reordered key, or an edit)", want)
		return nil
	}
	predSeq, predFound, err := db.seqOfHash(ctx, ev.PrevHash)
	if err != nil {
		return err
	}
	if Hash(ev) == ev.Hash {
		// Intact on its own, but it does not follow the verified record.
		// Append links record n to record n-1, so a record hashed at n
		// that names another existing record was forged.
		switch {
		case predFound:
			set(want, ProblemInserted, "record %d was not appended: it names record %d as its predecessor", want, predSeq)
		case want == 1:
			set(1, ProblemModified, "record 1 was replaced: it does not start the chain")
		default:
			set(want-1, ProblemModified, "record %d was changed and re-hashed: record %d names a different hash for it", want-1, want)
		}
		return nil
	}
	origin, err := db.origin(ctx, ev, predSeq, predFound)
	if err != nil {
		return err
	}
	switch {
	case origin == 0:
		set(want, ProblemModified, "record %d does not match its hash", want)
	case origin < want:
		set(origin, ProblemInserted, "record %d was appended as %d: the record now at %d was inserted", want, origin, origin)
	case ev.PrevHash != GenesisHash && !predFound:
		set(want, ProblemDeleted, "record %d is missing: the record now at %d was appended as %d and its predecessor is gone", want, want, origin)
	default:
		set(want, ProblemReordered, "record %d holds the record appended as %d", want, origin)
	}
	return nil
}

// origin returns the seq at which ev's content was appended (the seq s for
// which Hash(ev with Seq s) == ev.Hash), or 0 when there is none: the content
// was modified. It tries the position after ev's named predecessor and the
// neighbours first, then every position up to the head.
func (db *DB) origin(ctx context.Context, ev depot.AuditEvent, predSeq int64, predFound bool) (int64, error) {
	try := func(s int64) bool {
		if s < 1 || s == ev.Seq {
			return false
		}
		c := ev
		c.Seq = s
		return Hash(c) == ev.Hash
	}
	var first []int64
	if ev.PrevHash == GenesisHash {
		first = append(first, 1)
	} else if predFound {
		first = append(first, predSeq+1)
	}
	first = append(first, ev.Seq-1, ev.Seq+1)
	for _, s := range first {
		if try(s) {
			return s, nil
		}
	}
	head, _, err := db.Head(ctx)
	if err != nil {
		return 0, err
	}
	for s := int64(1); s <= head+1 && s <= maxOriginSearch; s++ {
		if try(s) {
			return s, nil
		}
	}
	return 0, nil
}

// seqOfHash returns the seq of the record whose hash is h, if any.
func (db *DB) seqOfHash(ctx context.Context, h string) (int64, bool, error) {
	var seq int64
	err := db.sql.QueryRowContext(ctx, `SELECT seq FROM audit_events WHERE hash = $1 ORDER BY seq LIMIT 1`, h).Scan(&seq)
	if notFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, db.wrap(err, "verify audit chain")
	}
	return seq, true, nil
}
