package checkpoint

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"depot/servicedb"
)

// Problems Verify names.
const (
	// ProblemDiverged: the first Size records no longer hash to the root a
	// checkpoint signed — a record up to Size was changed, inserted or
	// removed after it was witnessed (even with the chain recomputed), or
	// the database was restored from an older copy and written on since.
	ProblemDiverged = "diverged"
	// ProblemMissing: a checkpoint covers more records than the trail has
	// — the tail was cut, or the database restored from an older copy.
	ProblemMissing = "missing"
	// ProblemBackdated: a record appended after a checkpoint is dated more
	// than the allowance before it — a forged append (depot dates every
	// record when it appends it).
	ProblemBackdated = "backdated"
	// ProblemChain: the hash chain itself is broken (see ChainReport).
	ProblemChain = "chain"
	// ProblemTree: the tree hashes stored in the database disagree with
	// the records (proofs taken from this database would not check).
	ProblemTree = "tree"
	// ProblemNoCheckpoint: no checkpoint signed by the key was found.
	ProblemNoCheckpoint = "no_checkpoint"
)

// DefaultAllowance is how much earlier than the checkpoint before it a
// record may be dated: the time between a record being dated and committed
// (queued behind other appends), plus clock differences between services
// instances and command-line tools.
const DefaultAllowance = 5 * time.Minute

// Result is one checkpoint's standing against the trail.
type Result struct {
	Signed
	Holds   bool
	Problem string // ProblemDiverged or ProblemMissing when it does not hold
}

// Finding is one problem Verify found.
type Finding struct {
	Problem string
	Seq     int64 // the record concerned, when one can be named
	Detail  string
}

// Report is the result of Verify.
type Report struct {
	Key         string    // name of the key the checkpoints were checked with
	Records     int64     // records in the trail
	Root        tlog.Hash // root recomputed from the records
	Chain       servicedb.ChainReport
	Checkpoints []Result  // signed by the key, by size then time
	Ignored     []Signed  // found in the witness but not signed by the key
	LastGood    *Result   // the last checkpoint (by signing time) that holds before the first that does not
	FirstBad    *Result   // the first checkpoint (by signing time) that does not hold
	Findings    []Finding // every problem, most important first
}

// OK reports whether the trail matches every checkpoint and its chain is
// intact.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

// Options tune Verify.
type Options struct {
	// Allowance for backdating; default DefaultAllowance.
	Allowance time.Duration
}

// Verify checks the trail in db against the checkpoints found in a witness:
// it recomputes the chain and the Merkle tree from the records, compares
// the root at every checkpoint's size with the root it signed, checks that
// no record after a checkpoint is dated before it, that the tree hashes the
// database stores (from which proofs are taken) match the records, and with
// a consistency proof from the stored tree that the newest checkpoint that
// holds is a prefix of the current tree. Checkpoints that do not open with
// v are listed in Ignored. Errors reading the database are returned as
// errors.
func Verify(ctx context.Context, db *servicedb.DB, notes []Signed, v note.Verifier, opts Options) (*Report, error) {
	if opts.Allowance <= 0 {
		opts.Allowance = DefaultAllowance
	}
	r := &Report{Key: v.Name()}
	seen := map[string]bool{}
	for _, s := range OpenAll(notes, v) {
		if s.Err != nil {
			r.Ignored = append(r.Ignored, s)
			continue
		}
		if k := string(s.Check.Text()); !seen[k] {
			seen[k] = true
			r.Checkpoints = append(r.Checkpoints, Result{Signed: s})
		}
	}
	sort.SliceStable(r.Checkpoints, func(i, j int) bool {
		a, b := r.Checkpoints[i].Check, r.Checkpoints[j].Check
		return a.Size < b.Size || a.Size == b.Size && a.Time.Before(b.Time)
	})
	chain, err := db.VerifyChain(ctx)
	if err != nil {
		return nil, err
	}
	r.Chain = chain
	if err := r.walk(ctx, db, opts); err != nil {
		return nil, err
	}
	r.judge()
	if err := r.checkStoredTree(ctx, db); err != nil {
		return nil, err
	}
	if !chain.OK {
		r.Findings = append([]Finding{{Problem: ProblemChain, Seq: chain.FirstBad,
			Detail: fmt.Sprintf("the hash chain is broken at record %d: %s: %s", chain.FirstBad, chain.Problem, chain.Detail)}}, r.Findings...)
	}
	if len(r.Checkpoints) == 0 {
		r.Findings = append(r.Findings, Finding{Problem: ProblemNoCheckpoint,
			Detail: fmt.Sprintf("no checkpoint signed by %s was found: nothing to verify the trail against", v.Name())})
	}
	return r, nil
}

// walk reads every record in seq order, recomputes the tree, compares its
// root at each checkpoint's size, checks the dates after each checkpoint
// and compares the stored leaves.
func (r *Report) walk(ctx context.Context, db *servicedb.DB, opts Options) error {
	var (
		cr       compactRange
		n        int64
		next     int         // index of the next checkpoint to reach
		after    *Checkpoint // the last checkpoint that holds, reached so far
		badLeaf  int64       // first record whose stored leaf differs
		leaves   []servicedb.StoredLeaf
		backdate *Finding
	)
	const page = 1000
	for {
		evs, err := db.Events(ctx, servicedb.Filter{AfterSeq: n, Limit: page})
		if err != nil {
			return err
		}
		if len(evs) > 0 && badLeaf == 0 {
			if leaves, err = db.StoredLeaves(ctx, n, page); err != nil {
				return err
			}
		}
		for i, ev := range evs {
			n++
			if ev.Seq != n {
				// A gap or duplicate: the chain check names it; the
				// tree goes on by position.
				n = ev.Seq
			}
			leaf, err := servicedb.LeafHash(servicedb.Hash(ev))
			if err != nil {
				return err
			}
			cr.push(leaf)
			if badLeaf == 0 && (i >= len(leaves) || leaves[i].Seq != ev.Seq || leaves[i].Hash != leaf) {
				badLeaf = ev.Seq
			}
			if after != nil && backdate == nil && ev.Time.Before(after.Time.Add(-opts.Allowance)) {
				backdate = &Finding{Problem: ProblemBackdated, Seq: ev.Seq, Detail: fmt.Sprintf(
					"record %d is dated %s but was appended after the checkpoint of %s (%d records): a forged append",
					ev.Seq, ev.Time.UTC().Format(timeLayout), after.Time.UTC().Format(timeLayout), after.Size)}
			}
			for next < len(r.Checkpoints) && r.Checkpoints[next].Check.Size == cr.size {
				c := &r.Checkpoints[next]
				c.Holds = cr.root() == c.Check.Root
				if !c.Holds {
					c.Problem = ProblemDiverged
				} else if after == nil || c.Check.Time.After(after.Time) {
					ck := c.Check
					after = &ck
				}
				next++
			}
		}
		if len(evs) < page {
			break
		}
	}
	// Checkpoints of an empty tree hold when the trail is empty.
	for i := range r.Checkpoints {
		if c := &r.Checkpoints[i]; c.Check.Size == 0 {
			c.Holds = cr.size == 0 || c.Check.Root == emptyRoot()
			if !c.Holds {
				c.Problem = ProblemDiverged
			}
		}
	}
	for ; next < len(r.Checkpoints); next++ {
		if c := &r.Checkpoints[next]; c.Check.Size > cr.size {
			c.Holds, c.Problem = false, ProblemMissing
		}
	}
	r.Records, r.Root = cr.size, cr.root()
	if badLeaf != 0 {
		r.Findings = append(r.Findings, Finding{Problem: ProblemTree, Seq: badLeaf, Detail: fmt.Sprintf(
			"record %d differs from the tree hash stored when it was appended: it was changed (or the stored tree was)", badLeaf)})
	}
	if backdate != nil {
		r.Findings = append(r.Findings, *backdate)
	}
	return nil
}

// judge names the last checkpoint that holds and the first that does not,
// by signing time, and adds a finding for each one that does not hold.
func (r *Report) judge() {
	byTime := make([]*Result, len(r.Checkpoints))
	for i := range r.Checkpoints {
		byTime[i] = &r.Checkpoints[i]
	}
	sort.SliceStable(byTime, func(i, j int) bool { return byTime[i].Check.Time.Before(byTime[j].Check.Time) })
	for _, c := range byTime {
		if !c.Holds && r.FirstBad == nil {
			r.FirstBad = c
		}
		if c.Holds && r.FirstBad == nil {
			r.LastGood = c
		}
	}
	// One finding per kind of failure, naming the records concerned and
	// how many checkpoints fail that way.
	var out []Finding
	var holdsBelow int64 // size of the largest checkpoint that holds, below the first diverged
	var diverged, missing *Result
	nd, nm := 0, 0
	for i := range r.Checkpoints {
		c := &r.Checkpoints[i]
		switch {
		case c.Holds && diverged == nil:
			holdsBelow = c.Check.Size
		case c.Problem == ProblemDiverged:
			nd++
			if diverged == nil {
				diverged = c
			}
		case c.Problem == ProblemMissing:
			nm++
			missing = c // the largest
		}
	}
	if diverged != nil {
		out = append(out, Finding{Problem: ProblemDiverged, Seq: holdsBelow + 1, Detail: fmt.Sprintf(
			"the first %d records no longer hash to the root signed at %s (%s): one of records %d to %d was changed, inserted or removed after it was witnessed, or the database was restored from an older copy",
			diverged.Check.Size, diverged.Check.Time.UTC().Format(timeLayout), failing(nd), holdsBelow+1, diverged.Check.Size)})
	}
	if missing != nil {
		out = append(out, Finding{Problem: ProblemMissing, Seq: r.Records + 1, Detail: fmt.Sprintf(
			"the checkpoint signed at %s covers %d records but the trail has %d (%s): records %d to %d were removed (the tail cut) or the database was restored from an older copy",
			missing.Check.Time.UTC().Format(timeLayout), missing.Check.Size, r.Records, failing(nm), r.Records+1, missing.Check.Size)})
	}
	r.Findings = append(out, r.Findings...)
}

// failing says how many checkpoints fail one way.
func failing(n int) string {
	if n == 1 {
		return "1 checkpoint fails this way"
	}
	return fmt.Sprintf("%d checkpoints fail this way", n)
}

// checkStoredTree compares the tree the database stores with the one
// recomputed, and proves from it that the newest checkpoint that holds is a
// prefix of the current tree (what proofs handed out rely on).
func (r *Report) checkStoredTree(ctx context.Context, db *servicedb.DB) error {
	stored, err := db.TreeHash(ctx, r.Records)
	if err != nil || stored != r.Root {
		r.Findings = append(r.Findings, Finding{Problem: ProblemTree, Detail: fmt.Sprintf(
			"the tree hashes stored in the database do not match the records (root of %d records): proofs from this database would not check", r.Records)})
		return nil
	}
	var newest *Result
	for i := range r.Checkpoints {
		if c := &r.Checkpoints[i]; c.Holds && c.Check.Size > 0 {
			newest = c
		}
	}
	if newest == nil {
		return nil
	}
	p, err := db.ProveTree(ctx, r.Records, newest.Check.Size)
	if err == nil {
		err = tlog.CheckTree(p, r.Records, r.Root, newest.Check.Size, newest.Check.Root)
	}
	if err != nil {
		r.Findings = append(r.Findings, Finding{Problem: ProblemTree, Detail: fmt.Sprintf(
			"the stored tree does not prove the checkpoint of %d records a prefix of the trail: %v", newest.Check.Size, err)})
	}
	return nil
}

// compactRange is the right edge of a Merkle tree being built leaf by leaf:
// the roots of its complete subtrees, largest first. The root of the whole
// tree folds them from the right (RFC 6962's split at the largest power of
// two).
type compactRange struct {
	size   int64
	hashes []tlog.Hash
	levels []int
}

func (c *compactRange) push(leaf tlog.Hash) {
	h, l := leaf, 0
	for len(c.levels) > 0 && c.levels[len(c.levels)-1] == l {
		h = tlog.NodeHash(c.hashes[len(c.hashes)-1], h)
		c.hashes, c.levels = c.hashes[:len(c.hashes)-1], c.levels[:len(c.levels)-1]
		l++
	}
	c.hashes, c.levels = append(c.hashes, h), append(c.levels, l)
	c.size++
}

func (c *compactRange) root() tlog.Hash {
	if len(c.hashes) == 0 {
		return emptyRoot()
	}
	h := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.hashes[i], h)
	}
	return h
}

// emptyRoot is the root of the empty tree (SHA-256 of nothing).
func emptyRoot() tlog.Hash {
	h, _ := tlog.TreeHash(0, nil)
	return h
}
