package checkpoint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"depot"
	"depot/servicedb"
)

// A proof bundle is what `depot audit export --proofs` writes and `depot
// audit check-proof` reads: JSON lines, first the signed checkpoint,
//
//	{"checkpoint": "<the signed note, as kept by the witness>"}
//
// then one line per record, the record as `depot audit export` writes it
// and its inclusion proof in the checkpoint's tree (base64 hashes, as
// tlog.ProveRecord returns them):
//
//	{"record": {"seq": 7, …, "hash": "…"}, "proof": ["…", "…"]}
//
// Checking a line needs only the public key: open the note, recompute the
// record's hash from its fields (servicedb.Canonical), take its leaf hash
// (servicedb.LeafHash) and check the proof against the checkpoint's root
// and size (tlog.CheckRecord with leaf index seq-1).

// BundleHeader is the first line of a proof bundle.
type BundleHeader struct {
	Checkpoint string `json:"checkpoint"`
}

// ProvenRecord is one record line of a proof bundle.
type ProvenRecord struct {
	Record depot.AuditEvent `json:"record"`
	Proof  tlog.RecordProof `json:"proof"`
}

// Prover writes proof bundles for one checkpoint.
type Prover struct {
	db *servicedb.DB
	c  Checkpoint
}

// NewProver returns a prover for records up to c.Size, after checking that
// the tree the database stores has c's root at c's size (so that its
// proofs will check).
func NewProver(ctx context.Context, db *servicedb.DB, c Checkpoint) (*Prover, error) {
	root, err := db.TreeHash(ctx, c.Size)
	if err != nil {
		return nil, err
	}
	if root != c.Root {
		return nil, fmt.Errorf("the database's tree of %d records does not match the checkpoint signed at %s: run depot audit verify --checkpoints",
			c.Size, c.Time.UTC().Format(timeLayout))
	}
	return &Prover{db: db, c: c}, nil
}

// Prove returns ev with its inclusion proof. ev must be a record of the
// checkpoint (seq ≤ its size).
func (p *Prover) Prove(ctx context.Context, ev depot.AuditEvent) (ProvenRecord, error) {
	proof, err := p.db.ProveRecord(ctx, ev.Seq, p.c.Size)
	if err != nil {
		return ProvenRecord{}, err
	}
	return ProvenRecord{Record: ev, Proof: proof}, nil
}

// CheckRecord checks that pr's record, as its fields stand, is leaf seq-1
// of c's tree.
func CheckRecord(c Checkpoint, pr ProvenRecord) error {
	ev := pr.Record
	if ev.Seq < 1 || ev.Seq > c.Size {
		return fmt.Errorf("record %d is not covered by a checkpoint of %d records", ev.Seq, c.Size)
	}
	h := servicedb.Hash(ev)
	if h != ev.Hash {
		return fmt.Errorf("record %d: its fields do not hash to its hash", ev.Seq)
	}
	leaf, err := servicedb.LeafHash(h)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(pr.Proof, c.Size, c.Root, ev.Seq-1, leaf); err != nil {
		return fmt.Errorf("record %d: %w", ev.Seq, err)
	}
	return nil
}

// BundleResult is the result of CheckBundle.
type BundleResult struct {
	Checkpoint Checkpoint
	Checked    int     // record lines read
	Failed     []error // one per record that does not check
}

// CheckBundle reads a proof bundle and checks its checkpoint's signature
// with v and every record's proof. A bundle whose checkpoint does not open
// is an error; records that do not check are listed in Failed.
func CheckBundle(r io.Reader, v note.Verifier) (BundleResult, error) {
	var res BundleResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return res, err
		}
		return res, errors.New("empty proof bundle")
	}
	var hdr BundleHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Checkpoint == "" {
		return res, errors.New("the first line of a proof bundle must be {\"checkpoint\": …}")
	}
	c, err := Open([]byte(hdr.Checkpoint), v)
	if err != nil {
		return res, err
	}
	res.Checkpoint = c
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		res.Checked++
		var pr ProvenRecord
		if err := json.Unmarshal(sc.Bytes(), &pr); err != nil {
			res.Failed = append(res.Failed, fmt.Errorf("line %d: %v", res.Checked+1, err))
			continue
		}
		if err := CheckRecord(c, pr); err != nil {
			res.Failed = append(res.Failed, err)
		}
	}
	return res, sc.Err()
}
