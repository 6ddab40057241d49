package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// exitIntegrity is the exit status of "depot audit verify" on a broken chain.
const exitIntegrity = 6

// auditTrail starts a cluster on a fresh database of engine, uploads n small
// files through web, stops the cluster and returns the database URL and the
// seqs of the upload.completed records.
func auditTrail(t *testing.T, engine string, n int) (string, []int64) {
	t.Helper()
	url := freshURL(t, engine)
	c := newCluster(t, clusterOpts{dbURL: url})
	for i := range n {
		data, _ := payloadBytes(uint64(200+i), 100+i)
		expectStatus(t, c.do("PUT", fmt.Sprintf("/api/v1/files/c1/t/%d.csv", i), bytes.NewReader(data), nil), http.StatusCreated)
	}
	c.web.stop()
	c.services.stop()
	db := openAuditDB(t, url)
	evs, err := db.Events(context.Background(), servicedb.Filter{Action: depot.ActionUploadCompleted})
	if err != nil || len(evs) != n {
		t.Fatalf("upload.completed records: %d, %v", len(evs), err)
	}
	var seqs []int64
	for _, ev := range evs {
		seqs = append(seqs, ev.Seq)
	}
	return url, seqs
}

// auditVerify runs "depot audit verify" and returns its stdout and status.
func auditVerify(t *testing.T, url string) (string, int) {
	t.Helper()
	out, errOut, code := depotCLIResult(map[string]string{"DEPOT_DATABASE_URL": url}, "audit", "verify")
	if code != 0 && code != exitIntegrity {
		t.Fatalf("depot audit verify: exit %d: %s%s", code, out, errOut)
	}
	return out, code
}

// dropAppendOnly removes the append-only triggers, as an attacker with
// database access would before editing the trail.
func dropAppendOnly(t *testing.T, db *servicedb.DB) {
	t.Helper()
	stmts := []string{"DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"}
	if db.Engine() == servicedbtest.Postgres {
		stmts = []string{"DROP TRIGGER audit_events_append_only ON audit_events", "DROP TRIGGER audit_events_no_truncate ON audit_events"}
	}
	for _, s := range stmts {
		mustExec(t, db.SQL(), s)
	}
}

func mustExec(t *testing.T, db *sql.DB, stmt string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestAuditVerifyTamper(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		t.Run("intact", func(t *testing.T) {
			url, _ := auditTrail(t, e.Engine, 3)
			out, code := auditVerify(t, url)
			if code != 0 || !strings.Contains(out, "intact") {
				t.Fatalf("verify of an intact trail: exit %d: %s", code, out)
			}
		})

		t.Run("triggers refuse UPDATE and DELETE", func(t *testing.T) {
			url, seqs := auditTrail(t, e.Engine, 2)
			db := openAuditDB(t, url)
			for _, stmt := range []string{
				"UPDATE audit_events SET file_name = 'x' WHERE seq = $1",
				"UPDATE audit_events SET seq = seq + 1000 WHERE seq = $1",
				"DELETE FROM audit_events WHERE seq = $1",
			} {
				_, err := db.SQL().ExecContext(context.Background(), stmt, seqs[0])
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err %v, want the append-only trigger to refuse it", stmt, err)
				}
			}
			if _, err := db.SQL().ExecContext(context.Background(), "DELETE FROM audit_events"); err == nil {
				t.Errorf("DELETE of every record was accepted")
			}
			if e.Engine == servicedbtest.Postgres {
				if _, err := db.SQL().ExecContext(context.Background(), "TRUNCATE audit_events"); err == nil {
					t.Errorf("TRUNCATE was accepted")
				}
			}
			if out, code := auditVerify(t, url); code != 0 {
				t.Fatalf("trail changed although every edit was refused: exit %d: %s", code, out)
			}
		})

		cases := []struct {
			name    string
			problem string
			// tamper edits the trail and returns the seq verify must name.
			tamper func(t *testing.T, db *servicedb.DB, seqs []int64) int64
		}{
			{"change a field", servicedb.ProblemModified, func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				mustExec(t, db.SQL(), "UPDATE audit_events SET stored_size = stored_size + 1 WHERE seq = $1", seqs[1])
				return seqs[1]
			}},
			{"change the actor", servicedb.ProblemModified, func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				mustExec(t, db.SQL(), "UPDATE audit_events SET actor = 'mallory' WHERE seq = $1", seqs[2])
				return seqs[2]
			}},
			{"delete a row", servicedb.ProblemDeleted, func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				mustExec(t, db.SQL(), "DELETE FROM audit_events WHERE seq = $1", seqs[1])
				return seqs[1]
			}},
			{"swap two rows", servicedb.ProblemReordered, func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				a, b := seqs[1], seqs[2]
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = 1000000 WHERE seq = $1", a)
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = $1 WHERE seq = $2", a, b)
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = $1 WHERE seq = 1000000", b)
				return a
			}},
			{"insert one", servicedb.ProblemInserted, func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				// A forged record at position k, correctly hashed and
				// linked to k-1 (the hash is not secret); the records from
				// k on are renumbered to make room.
				k := seqs[1]
				prev := auditAfter(t, db, k-2)[0]
				src := auditAfter(t, db, k-1)[0]
				forged := src
				forged.Seq, forged.PrevHash, forged.FileName = k, prev.Hash, "forged.csv"
				forged.Hash = servicedb.Hash(forged)
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= $1", k)
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = seq - 999999 WHERE seq >= 1000000")
				mustExec(t, db.SQL(), `INSERT INTO audit_events (`+auditColumns+`)
					SELECT $1, time_ms, action, outcome, error_code, actor, auth_method, cohort, storage_key,
					$2, upload_id, declared_size, bytes_transferred, stored_size, sha256, server_role,
					web_node, correlation_id, client_ip, user_agent, stream_start_ms, stream_complete_ms,
					duration_ms, file_class, cleanup_scheduled_for_ms, metadata, $3, $4
					FROM audit_events WHERE seq = $5`, k, forged.FileName, forged.PrevHash, forged.Hash, k+1)
				if got := auditAfter(t, db, k-1)[0]; got.Hash != servicedb.Hash(got) {
					t.Fatalf("test bug: the forged record does not verify on its own")
				}
				return k
			}},
			{"insert one naively", "", func(t *testing.T, db *servicedb.DB, seqs []int64) int64 {
				// A copy of a record at a free position after renumbering,
				// with a made-up hash.
				k := seqs[1]
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= $1", k)
				mustExec(t, db.SQL(), "UPDATE audit_events SET seq = seq - 999999 WHERE seq >= 1000000")
				mustExec(t, db.SQL(), `INSERT INTO audit_events (`+auditColumns+`)
					SELECT $1, time_ms, action, outcome, error_code, actor, auth_method, cohort, storage_key,
					'copy.csv', upload_id, declared_size, bytes_transferred, stored_size, sha256, server_role,
					web_node, correlation_id, client_ip, user_agent, stream_start_ms, stream_complete_ms,
					duration_ms, file_class, cleanup_scheduled_for_ms, metadata, prev_hash, $2
					FROM audit_events WHERE seq = $3`, k, strings.Repeat("ab", 32), k+1)
				return k
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				url, seqs := auditTrail(t, e.Engine, 4)
				db := openAuditDB(t, url)
				dropAppendOnly(t, db)
				at := tc.tamper(t, db, seqs)
				out, code := auditVerify(t, url)
				if code != exitIntegrity {
					t.Fatalf("verify after %s: exit %d, want %d: %s", tc.name, code, exitIntegrity, out)
				}
				if !strings.Contains(out, fmt.Sprintf("BROKEN at seq %d:", at)) {
					t.Errorf("verify after %s does not name seq %d: %s", tc.name, at, out)
				}
				if tc.problem != "" && !strings.Contains(out, ": "+tc.problem+":") {
					t.Errorf("verify after %s does not call it %q: %s", tc.name, tc.problem, out)
				}
				t.Logf("%s: %s", tc.name, strings.TrimSpace(out))
			})
		}
	})
}

// auditColumns is the audit_events column list in table order.
const auditColumns = `seq, time_ms, action, outcome, error_code, actor, auth_method, cohort,
	storage_key, file_name, upload_id, declared_size, bytes_transferred, stored_size, sha256,
	server_role, web_node, correlation_id, client_ip, user_agent, stream_start_ms,
	stream_complete_ms, duration_ms, file_class, cleanup_scheduled_for_ms, metadata,
	prev_hash, hash`
