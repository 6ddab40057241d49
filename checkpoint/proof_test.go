package checkpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"depot"
	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// bundle writes a proof bundle of records 1..upTo against checkpoint msg.
func bundle(t *testing.T, db *servicedb.DB, msg []byte, c checkpoint.Checkpoint, upTo int64) []byte {
	t.Helper()
	ctx := context.Background()
	p, err := checkpoint.NewProver(ctx, db, c)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(checkpoint.BundleHeader{Checkpoint: string(msg)}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, servicedb.Filter{Limit: int(upTo)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		pr, err := p.Prove(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(pr); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func latestNote(t *testing.T, tr *trail) []byte {
	t.Helper()
	b, err := tr.witness.Latest(context.Background())
	if err != nil || b == nil {
		t.Fatalf("latest checkpoint: %v", err)
	}
	return b
}

func TestProofBundle(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		tr := standardTrail(t, e.URL)
		c := tr.checkpoint(t) // 28 records
		b := bundle(t, tr.db, latestNote(t, tr), c, 28)
		res, err := checkpoint.CheckBundle(bytes.NewReader(b), tr.key.Verifier)
		if err != nil || res.Checked != 28 || len(res.Failed) != 0 || res.Checkpoint.Size != 28 {
			t.Fatalf("CheckBundle = %+v, %v", res, err)
		}
		// A record edited in the bundle, a proof of another record, and
		// another key: each refused.
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		edited := strings.Replace(lines[5], `"actor":"alice"`, `"actor":"bob"`, 1)
		swapped := strings.Replace(lines[6], lines[6][strings.Index(lines[6], `"proof"`):], lines[7][strings.Index(lines[7], `"proof"`):], 1)
		bad := strings.Join([]string{lines[0], edited, swapped, lines[8]}, "\n")
		res, err = checkpoint.CheckBundle(strings.NewReader(bad), tr.key.Verifier)
		if err != nil || res.Checked != 3 || len(res.Failed) != 2 {
			t.Fatalf("tampered bundle: %+v, %v", res, err)
		}
		other, _ := newKey(t, "depot-audit")
		if _, err := checkpoint.CheckBundle(bytes.NewReader(b), other.Verifier); err == nil {
			t.Fatal("a bundle checked with another key")
		}
		// A prover refuses a checkpoint the database's tree does not match.
		checkpointtest.RewriteRecord(t, tr.db, 3, func(ev *depot.AuditEvent) { ev.Actor = "mallory" })
		if _, err := checkpoint.NewProver(context.Background(), tr.db, c); err == nil {
			t.Fatal("a prover was made for a checkpoint the trail no longer matches")
		}
	})
}
