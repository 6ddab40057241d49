package checkpoint_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// trail is a database with checkpoints in a witness directory.
type trail struct {
	db      *servicedb.DB
	key     *checkpoint.SigningKey
	pub     string // the public key file
	witness *checkpoint.Dir
	w       *checkpoint.Writer
	cps     map[int64]checkpoint.Checkpoint // by size
}

func newTrail(t *testing.T, url string) *trail {
	t.Helper()
	tr := &trail{db: openDB(t, url), witness: checkpoint.NewDir(filepath.Join(t.TempDir(), "witness")), cps: map[int64]checkpoint.Checkpoint{}}
	tr.key, tr.pub = newKey(t, "depot-audit")
	var err error
	if tr.w, err = checkpoint.New(checkpoint.Config{DB: tr.db, Key: tr.key, Witnesses: []checkpoint.Witness{tr.witness}}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr *trail) append(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		ev := depot.AuditEvent{Action: depot.ActionDownload, Outcome: depot.OutcomeSuccess, Actor: "alice",
			Key: "c1/f.csv", DeclaredSize: -1, StoredSize: int64(i), Metadata: map[string]string{"range": "bytes=0-9"}}
		if _, err := tr.db.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func (tr *trail) checkpoint(t *testing.T) checkpoint.Checkpoint {
	t.Helper()
	c, err := tr.w.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tr.cps[c.Size] = c
	return c
}

func (tr *trail) verify(t *testing.T) *checkpoint.Report {
	t.Helper()
	notes, err := tr.witness.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := checkpoint.Verify(context.Background(), tr.db, notes, tr.key.Verifier, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		t.Logf("%s (seq %d): %s", f.Problem, f.Seq, f.Detail)
	}
	return r
}

// standardTrail: checkpoints at 10, 20 and 25 records, then 3 records
// not yet witnessed.
func standardTrail(t *testing.T, url string) *trail {
	tr := newTrail(t, url)
	tr.append(t, 10)
	tr.checkpoint(t)
	tr.append(t, 10)
	tr.checkpoint(t)
	tr.append(t, 5)
	tr.checkpoint(t)
	tr.append(t, 3)
	return tr
}

// want checks the findings' problems (in order), the last checkpoint that
// holds and the seq the first finding names (0: any).
func want(t *testing.T, r *checkpoint.Report, problems []string, lastGood int64, seq int64) {
	t.Helper()
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.Problem)
	}
	if strings.Join(got, ",") != strings.Join(problems, ",") {
		t.Fatalf("findings %v, want %v", got, problems)
	}
	if len(problems) > 0 && r.OK() || len(problems) == 0 && !r.OK() {
		t.Fatalf("OK() = %v with findings %v", r.OK(), got)
	}
	switch {
	case lastGood < 0 && r.LastGood != nil:
		t.Fatalf("last good checkpoint %d, want none", r.LastGood.Check.Size)
	case lastGood >= 0 && (r.LastGood == nil || r.LastGood.Check.Size != lastGood):
		t.Fatalf("last good checkpoint %+v, want size %d", r.LastGood, lastGood)
	}
	if seq != 0 && r.Findings[0].Seq != seq {
		t.Fatalf("first finding names record %d, want %d", r.Findings[0].Seq, seq)
	}
}

func TestVerifyIntact(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		tr := standardTrail(t, e.URL)
		r := tr.verify(t)
		want(t, r, nil, 25, 0)
		if r.Records != 28 || len(r.Checkpoints) != 3 || r.FirstBad != nil {
			t.Fatalf("report %+v", r)
		}
	})
}

// The four ways to rewrite history, each caught.
func TestVerifyTampering(t *testing.T) {
	cases := []struct {
		name     string
		tamper   func(t *testing.T, tr *trail)
		problems []string
		lastGood int64
		seq      int64
	}{
		{"rewrite with the chain and tree recomputed", func(t *testing.T, tr *trail) {
			checkpointtest.RewriteRecord(t, tr.db, 15, func(ev *depot.AuditEvent) { ev.Actor = "mallory" })
		}, []string{checkpoint.ProblemDiverged}, 10, 11},
		{"rewrite with the chain recomputed", func(t *testing.T, tr *trail) {
			checkpointtest.RewriteChain(t, tr.db, 15, func(ev *depot.AuditEvent) { ev.ClientIP = "203.0.113.9" })
		}, []string{checkpoint.ProblemDiverged, checkpoint.ProblemTree, checkpoint.ProblemTree}, 10, 11},
		{"forged append, backdated", func(t *testing.T, tr *trail) {
			ev := depot.AuditEvent{Action: depot.ActionDownload, Outcome: depot.OutcomeSuccess, Actor: "alice",
				Key: "c1/secret.csv", Time: tr.cps[10].Time.Add(-time.Hour)}
			checkpointtest.AppendForged(t, tr.db, ev)
		}, []string{checkpoint.ProblemBackdated}, 25, 29},
		{"cut tail", func(t *testing.T, tr *trail) {
			checkpointtest.CutTail(t, tr.db, 5)
		}, []string{checkpoint.ProblemMissing}, 20, 24},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
				tr := standardTrail(t, e.URL)
				tc.tamper(t, tr)
				want(t, tr.verify(t), tc.problems, tc.lastGood, tc.seq)
			})
		})
	}
}

// The database restored from a copy taken after the first checkpoint, and
// written on since: the later checkpoints no longer hold, whether the
// trail is now shorter or longer than they are.
func TestVerifyRollback(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		tr := newTrail(t, e.URL)
		tr.append(t, 10)
		tr.checkpoint(t)
		tr.append(t, 2)
		restore := checkpointtest.Snapshot(t, tr.db)
		tr.append(t, 8)
		tr.checkpoint(t)
		tr.append(t, 10)
		tr.checkpoint(t)
		restore() // 12 records again
		tr.append(t, 13)
		r := tr.verify(t)
		want(t, r, []string{checkpoint.ProblemDiverged, checkpoint.ProblemMissing}, 10, 11)
		if r.FirstBad == nil || r.FirstBad.Check.Size != 20 {
			t.Fatalf("first bad %+v, want the checkpoint of 20", r.FirstBad)
		}
	})
}

// A naive edit (no hash recomputed) is named by the chain and by the tree.
func TestVerifyNaiveEdit(t *testing.T) {
	t.Parallel()
	tr := standardTrail(t, servicedbtest.SQLiteURL(t))
	checkpointtest.DropTriggers(t, tr.db)
	if _, err := tr.db.SQL().Exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"); err != nil {
		t.Fatal(err)
	}
	r := tr.verify(t)
	want(t, r, []string{checkpoint.ProblemChain, checkpoint.ProblemDiverged, checkpoint.ProblemTree, checkpoint.ProblemTree}, -1, 7)
	if r.Findings[2].Seq != 7 {
		t.Fatalf("the tree finding names %d, want 7", r.Findings[2].Seq)
	}
}

// Limits, stated as tests: an append dated now by someone with write
// access is not told apart from depot's own; a witness's foreign notes are
// ignored; no checkpoint at all is a finding.
func TestVerifyLimits(t *testing.T) {
	t.Parallel()
	tr := standardTrail(t, servicedbtest.SQLiteURL(t))
	checkpointtest.AppendForged(t, tr.db, depot.AuditEvent{Action: depot.ActionList, Outcome: depot.OutcomeSuccess, Time: time.Now()})
	other, _ := newKey(t, "depot-audit")
	msg, c, _ := checkpoint.Sign(checkpoint.Checkpoint{Size: 3, Time: time.Now(), Head: strings.Repeat("0", 64)}, other)
	if err := tr.witness.Put(context.Background(), checkpoint.FileName(c), msg); err != nil {
		t.Fatal(err)
	}
	r := tr.verify(t)
	want(t, r, nil, 25, 0)
	if len(r.Ignored) != 1 {
		t.Fatalf("%d notes ignored, want the foreign one", len(r.Ignored))
	}

	empty := newTrail(t, servicedbtest.SQLiteURL(t))
	empty.append(t, 2)
	if err := checkpoint.NewDir(t.TempDir()).Put(context.Background(), "x", nil); err != nil {
		t.Fatal(err)
	}
	r, err := checkpoint.Verify(context.Background(), empty.db, nil, empty.key.Verifier, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, []string{checkpoint.ProblemNoCheckpoint}, -1, 0)
}
