package servicedb_test

import (
	"context"
	"strings"
	"testing"

	"depot"
	"depot/servicedb"
)

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{}`, `{"a":"1"}`, `{"a":"1","b":""}`, `{"":"x","a":"\u003c\u0026\u003e"}`, `{"é":"ü"}`} {
		m, err := servicedb.ParseMetadata(s)
		if err != nil {
			t.Errorf("ParseMetadata(%s): %v", s, err)
			continue
		}
		if back, _ := servicedb.MetadataJSON(m); back != s {
			t.Errorf("ParseMetadata(%s) → %v → %s", s, m, back)
		}
	}
	for _, s := range []string{
		`{"permission":"delete","permission":"upload"}`, // the reviewer's record
		`{"b":"1","a":"2"}`,                             // keys out of order
		`{"a": "1"}`,                                    // whitespace
		`{"a":"<"}`,                                     // another escaping
		`{"a":"\u0031"}`,                                // another escaping of a plain character
		`{"a":1}`,                                       // not a string
		`null`, `[]`, `""`, ``,                          // not an object
		`{"a":"1"}x`, `{"a":"1"} `,
	} {
		if m, err := servicedb.ParseMetadata(s); err == nil {
			t.Errorf("ParseMetadata(%s) = %v, want a refusal", s, m)
		}
	}
}

// The reviewer's duplicated key, written through SQL: the database refuses
// it on insert; with the trigger dropped, verify names the record (its hash
// still matches the last value, which is what encoding/json keeps), and
// reading it back shows the stored text rather than one of the two values.
func TestDuplicatedMetadataKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		appendN(t, db, 3)
		ev := eventAt(t, db, 3)
		ev.Seq, ev.PrevHash = 4, ev.Hash
		ev.Metadata = map[string]string{"permission": "upload"}
		ev.Hash = servicedb.Hash(ev)
		insert := func(meta string) error {
			_, err := db.SQL().ExecContext(ctx, `INSERT INTO audit_events (seq, time_ms, action, outcome,
				metadata, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				ev.Seq, ev.Time.UnixMilli(), string(ev.Action), string(ev.Outcome), meta, ev.PrevHash, ev.Hash)
			return err
		}
		const dup = `{"permission":"delete","permission":"upload"}`
		for _, bad := range []string{dup, `{"b":"1","a":"2"}`, `{"a":1}`, `[]`, `nope`} {
			if err := insert(bad); err == nil {
				t.Fatalf("the database accepted metadata %s", bad)
			}
		}
		dropMetadataTrigger(t, db)
		if err := insert(dup); err != nil {
			t.Fatal(err)
		}
		// What SQL sees differs from the value the hash covers.
		var sqlSees string
		if err := db.SQL().QueryRowContext(ctx, `SELECT `+jsonField(db)+` FROM audit_events WHERE seq = 4`).Scan(&sqlSees); err != nil {
			t.Fatal(err)
		}
		t.Logf("SQL reads permission=%s", sqlSees)
		got := eventAt(t, db, 4)
		if got.Metadata[servicedb.NonCanonicalMetadata] != dup || len(got.Metadata) != 1 {
			t.Fatalf("read back metadata %v, want the stored text under %s", got.Metadata, servicedb.NonCanonicalMetadata)
		}
		r, err := db.VerifyChain(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.FirstBad != 4 || r.Problem != servicedb.ProblemModified || !strings.Contains(r.Detail, "canonical") {
			t.Fatalf("VerifyChain = %+v, want record 4 modified (non-canonical metadata)", r)
		}
	})
}

// Even a record hashed over the marker the reader shows (the chain
// recomputed by whoever wrote the duplicate) does not verify.
func TestNonCanonicalMetadataRehashed(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		appendN(t, db, 2)
		dropMetadataTrigger(t, db)
		ev := eventAt(t, db, 2)
		const dup = `{"format":"csv","format":"tsv","rows":"1"}`
		ev.Seq, ev.PrevHash = 3, ev.Hash
		ev.Metadata = map[string]string{servicedb.NonCanonicalMetadata: dup}
		ev.Hash = servicedb.Hash(ev)
		mustExec(t, db, `INSERT INTO audit_events (seq, time_ms, action, outcome, metadata, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, ev.Seq, ev.Time.UnixMilli(), string(ev.Action), string(ev.Outcome), dup, ev.PrevHash, ev.Hash)
		r, err := db.VerifyChain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.FirstBad != 3 || r.Problem != servicedb.ProblemModified {
			t.Fatalf("VerifyChain = %+v, want record 3 modified", r)
		}
	})
}

func TestAppendRefusesReservedMetadataKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ev := sampleEvent(1)
		ev.Metadata = map[string]string{servicedb.NonCanonicalMetadata: "{}"}
		_, err := db.Append(context.Background(), ev)
		wantCode(t, err, depot.CodeInvalid)
	})
}

func dropMetadataTrigger(t *testing.T, db *servicedb.DB) {
	t.Helper()
	stmt := "DROP TRIGGER audit_events_canonical_metadata"
	if db.Engine() == servicedb.EnginePostgres {
		stmt += " ON audit_events"
	}
	mustExec(t, db, stmt)
}

// jsonField is the engine's SQL for the "permission" field of metadata.
func jsonField(db *servicedb.DB) string {
	if db.Engine() == servicedb.EnginePostgres {
		return `metadata::json->>'permission'`
	}
	return `json_extract(metadata, '$.permission')`
}
