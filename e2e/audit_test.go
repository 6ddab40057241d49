package e2e

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// Audit tests: every public operation through the two real processes leaves
// exactly the audit records it should, on SQLite and on PostgreSQL.

const auditUA = "depot-audit-e2e/1.0"

// openAuditDB opens the cluster's database from the test.
func openAuditDB(t *testing.T, url string) *servicedb.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := servicedb.Open(ctx, url)
	if err != nil {
		t.Fatalf("open audit db: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// auditAfter returns every record with seq > after, in seq order.
func auditAfter(t *testing.T, db *servicedb.DB, after int64) []depot.AuditEvent {
	t.Helper()
	var out []depot.AuditEvent
	for {
		evs, err := db.Events(context.Background(), servicedb.Filter{AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatalf("read audit records: %v", err)
		}
		out = append(out, evs...)
		if len(evs) < 1000 {
			return out
		}
		after = evs[len(evs)-1].Seq
	}
}

// auditHead returns the seq of the last audit record.
func auditHead(t *testing.T, db *servicedb.DB) int64 {
	t.Helper()
	seq, _, err := db.Head(context.Background())
	if err != nil {
		t.Fatalf("audit head: %v", err)
	}
	return seq
}

// waitRecords returns the records after seq after once there are n of
// them (or more), or what there is after 10 s.
func waitRecords(t *testing.T, db *servicedb.DB, after int64, n int) []depot.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := auditAfter(t, db, after)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// forEngine runs fn as one subtest per engine, each with a fresh database.
func forEngine(t *testing.T, fn func(t *testing.T, e servicedbtest.EngineURL)) {
	t.Helper()
	for _, e := range servicedbtest.Engines(t) {
		t.Run(e.Engine, func(t *testing.T) { fn(t, e) })
	}
}

// freshURL returns a new, empty database on engine.
func freshURL(t *testing.T, engine string) string {
	if engine == servicedbtest.Postgres {
		return servicedbtest.PostgresURL(t)
	}
	return servicedbtest.SQLiteURL(t)
}

// auditWant is what one expected record must hold. Empty/zero fields of
// auditWant are checked against the record's defaults where noted.
type auditWant struct {
	action   depot.Action
	outcome  depot.Outcome
	errCode  string
	actor    string // "" → must be empty (unauthenticated)
	key      string
	fileName string
	declared int64 // -1 unknown
	bytes    int64 // bytes_transferred; -2 = don't check
	stored   int64 // -1 unknown
	sha      string
	class    depot.Class
	stream   bool // stream_start set; for upload.completed also stream_complete and duration
	uploadID bool // upload_id must be non-empty
	meta     map[string]string
}

// checkRecord compares ev with w and with the facts of the web request.
func checkRecord(t *testing.T, i int, ev depot.AuditEvent, w auditWant, requestID string) {
	t.Helper()
	errs := []string{}
	bad := func(field string, got, want any) {
		errs = append(errs, fmt.Sprintf("%s = %v, want %v", field, got, want))
	}
	if ev.Action != w.action {
		bad("action", ev.Action, w.action)
	}
	if w.outcome == "" {
		w.outcome = depot.OutcomeSuccess
	}
	if ev.Outcome != w.outcome {
		bad("outcome", ev.Outcome, w.outcome)
	}
	if ev.ErrorCode != w.errCode {
		bad("error_code", ev.ErrorCode, w.errCode)
	}
	if ev.Actor != w.actor {
		bad("actor", ev.Actor, w.actor)
	}
	wantMethod := servicedb.AuthMethodToken
	if w.actor == "" {
		wantMethod = ""
	}
	if ev.AuthMethod != wantMethod {
		bad("auth_method", ev.AuthMethod, wantMethod)
	}
	wantCohort := ""
	if w.key != "" {
		wantCohort, _, _ = strings.Cut(w.key, "/")
	}
	if ev.Cohort != wantCohort {
		bad("cohort", ev.Cohort, wantCohort)
	}
	if ev.Key != w.key {
		bad("path", ev.Key, w.key)
	}
	if ev.FileName != w.fileName {
		bad("file_name", ev.FileName, w.fileName)
	}
	if ev.DeclaredSize != w.declared {
		bad("declared_size", ev.DeclaredSize, w.declared)
	}
	if w.bytes != -2 && ev.BytesTransferred != w.bytes {
		bad("bytes_transferred", ev.BytesTransferred, w.bytes)
	}
	if ev.StoredSize != w.stored {
		bad("stored_size", ev.StoredSize, w.stored)
	}
	if ev.SHA256 != w.sha {
		bad("sha256", ev.SHA256, w.sha)
	}
	if ev.FileClass != w.class {
		bad("file_class", ev.FileClass, w.class)
	}
	if ev.ServerRole != "services" {
		bad("server_role", ev.ServerRole, "services")
	}
	if ev.WebNode == "" {
		bad("web_node", `""`, "non-empty")
	}
	if requestID == "" || ev.CorrelationID != requestID {
		bad("correlation_id", ev.CorrelationID, "X-Request-Id "+requestID)
	}
	if ev.ClientIP != "127.0.0.1" {
		bad("client_ip", ev.ClientIP, "127.0.0.1")
	}
	if ev.UserAgent != auditUA {
		bad("user_agent", ev.UserAgent, auditUA)
	}
	if (ev.UploadID != "") != w.uploadID {
		bad("upload_id", ev.UploadID, fmt.Sprintf("set=%v", w.uploadID))
	}
	if w.stream {
		if ev.StreamStart == nil {
			bad("stream_start", nil, "set")
		}
		if ev.Action == depot.ActionUploadCompleted || ev.Action == depot.ActionDownloadCompleted {
			switch {
			case ev.StreamComplete == nil:
				bad("stream_complete", nil, "set")
			case ev.StreamStart != nil && ev.StreamComplete.Before(*ev.StreamStart):
				bad("stream_complete", ev.StreamComplete, "after stream_start")
			case ev.StreamStart != nil && absDiff(ev.DurationMS, ev.StreamComplete.Sub(*ev.StreamStart).Milliseconds()) > 1:
				bad("duration_ms", ev.DurationMS, ev.StreamComplete.Sub(*ev.StreamStart).Milliseconds())
			}
		} else if ev.StreamComplete != nil {
			bad("stream_complete", ev.StreamComplete, "nil")
		}
	} else if ev.StreamStart != nil || ev.StreamComplete != nil {
		bad("stream_start/complete", fmt.Sprint(ev.StreamStart, ev.StreamComplete), "nil")
	}
	if ev.DurationMS < 0 {
		bad("duration_ms", ev.DurationMS, ">= 0")
	}
	if ev.Time.IsZero() || time.Since(ev.Time) > time.Minute || time.Until(ev.Time) > 5*time.Second {
		bad("time", ev.Time, "now")
	}
	for k, v := range w.meta {
		if ev.Metadata[k] != v {
			bad("metadata["+k+"]", ev.Metadata[k], v)
		}
	}
	if len(errs) > 0 {
		t.Errorf("record %d (seq %d, %s): %s", i, ev.Seq, ev.Action, strings.Join(errs, "; "))
	}
}

func TestAuditOperations(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: e.URL})
		depotCLI(t, c.dbEnv(), "users", "add", "bob")
		bobToken := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "bob"))
		db := openAuditDB(t, e.URL)

		data, dataSum := payloadBytes(101, 1000)
		p1, p1Sum := payloadBytes(102, 3000)
		p2, p2Sum := payloadBytes(103, 5000)
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		// Part 1 declares its size (one-shot internal PUT); part 2 does not
		// (internal upload session).
		w1, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Disposition": {`form-data; name="file"; filename="one.pdf"`},
			"Content-Length":      {strconv.Itoa(len(p1))},
		})
		w1.Write(p1)
		w2, _ := mw.CreateFormFile("file", "two.pdf")
		w2.Write(p2)
		mw.Close()

		const (
			fileKey = "c1/tables/a.csv"
			perm    = depot.Permanent
		)
		dataLen := int64(len(data))
		type op struct {
			name   string
			token  string
			method string
			path   string
			body   []byte
			hdr    map[string]string
			status int
			want   []auditWant
		}
		ops := []op{
			{name: "PUT", method: "PUT", path: "/api/v1/files/" + fileKey, body: data, status: http.StatusCreated,
				want: []auditWant{
					{action: depot.ActionUploadCompleted, actor: "alice", key: fileKey, fileName: "a.csv", declared: dataLen, bytes: dataLen, stored: dataLen, sha: dataSum, class: perm, stream: true, uploadID: true},
				}},
			{name: "POST multipart", method: "POST", path: "/api/v1/files/c1/docs/", body: mp.Bytes(),
				hdr: map[string]string{"Content-Type": mw.FormDataContentType()}, status: http.StatusCreated,
				want: []auditWant{
					{action: depot.ActionUploadCompleted, actor: "alice", key: "c1/docs/one.pdf", fileName: "one.pdf", declared: int64(len(p1)), bytes: int64(len(p1)), stored: int64(len(p1)), sha: p1Sum, class: perm, stream: true, uploadID: true},
					{action: depot.ActionUploadCompleted, actor: "alice", key: "c1/docs/two.pdf", fileName: "two.pdf", declared: int64(len(p2)), bytes: int64(len(p2)), stored: int64(len(p2)), sha: p2Sum, class: perm, stream: true, uploadID: true},
				}},
			{name: "GET", method: "GET", path: "/api/v1/files/" + fileKey, status: http.StatusOK,
				want: []auditWant{
					{action: depot.ActionDownload, actor: "alice", key: fileKey, declared: dataLen, bytes: 0, stored: dataLen, sha: dataSum, class: perm, stream: true},
					{action: depot.ActionDownloadCompleted, actor: "alice", key: fileKey, declared: dataLen, bytes: dataLen, stored: dataLen, sha: dataSum, class: perm, stream: true},
				}},
			{name: "Range GET", method: "GET", path: "/api/v1/files/" + fileKey, hdr: map[string]string{"Range": "bytes=10-109"}, status: http.StatusPartialContent,
				want: []auditWant{
					{action: depot.ActionDownload, actor: "alice", key: fileKey, declared: 100, bytes: 0, stored: dataLen, sha: dataSum, class: perm, stream: true, meta: map[string]string{"range": "10-109"}},
					{action: depot.ActionDownloadCompleted, actor: "alice", key: fileKey, declared: 100, bytes: 100, stored: dataLen, sha: dataSum, class: perm, stream: true, meta: map[string]string{"range": "10-109"}},
				}},
			{name: "HEAD", method: "HEAD", path: "/api/v1/files/" + fileKey, status: http.StatusOK,
				want: []auditWant{{action: depot.ActionStat, actor: "alice", key: fileKey, declared: -1, bytes: 0, stored: dataLen, sha: dataSum, class: perm}}},
			{name: "list", method: "GET", path: "/api/v1/files/c1/docs/", status: http.StatusOK,
				want: []auditWant{{action: depot.ActionList, actor: "alice", key: "c1/docs/", declared: -1, bytes: 0, stored: -1, meta: map[string]string{"count": "2"}}}},
			{name: "DELETE", method: "DELETE", path: "/api/v1/files/c1/docs/two.pdf", status: http.StatusNoContent,
				want: []auditWant{{action: depot.ActionDelete, actor: "alice", key: "c1/docs/two.pdf", declared: -1, bytes: 0, stored: int64(len(p2)), sha: p2Sum, class: perm}}},
			{name: "403 GET", token: bobToken, method: "GET", path: "/api/v1/files/" + fileKey, status: http.StatusForbidden,
				want: []auditWant{{action: depot.ActionAccessDenied, outcome: depot.OutcomeDenied, errCode: string(depot.CodeForbidden), actor: "bob", key: fileKey, declared: -1, bytes: 0, stored: -1, meta: map[string]string{"permission": string(depot.PermRead)}}}},
			{name: "403 PUT", token: bobToken, method: "PUT", path: "/api/v1/files/c1/bob.csv", body: []byte("x,y\n"), status: http.StatusForbidden,
				want: []auditWant{{action: depot.ActionAccessDenied, outcome: depot.OutcomeDenied, errCode: string(depot.CodeForbidden), actor: "bob", key: "c1/", declared: -1, bytes: 0, stored: -1, meta: map[string]string{"permission": string(depot.PermUpload)}}}},
			{name: "401", token: "depot_not-a-valid-token", method: "GET", path: "/api/v1/files/" + fileKey, status: http.StatusUnauthorized,
				want: []auditWant{{action: depot.ActionAuthFailed, outcome: depot.OutcomeDenied, errCode: string(depot.CodeUnauthorized), declared: -1, bytes: 0, stored: -1}}},
		}
		for _, o := range ops {
			before := auditHead(t, db)
			token := c.token
			if o.token != "" {
				token = o.token
			}
			hdr := map[string]string{"User-Agent": auditUA}
			for k, v := range o.hdr {
				hdr[k] = v
			}
			var body *bytes.Reader
			if o.body != nil {
				body = bytes.NewReader(o.body)
			}
			var resp *http.Response
			if body != nil {
				resp = c.doAs(token, o.method, o.path, body, hdr)
			} else {
				resp = c.doAs(token, o.method, o.path, nil, hdr)
			}
			rb := readAll(t, resp)
			if resp.StatusCode != o.status {
				t.Fatalf("%s: status %d, want %d: %s", o.name, resp.StatusCode, o.status, rb)
			}
			rid := resp.Header.Get("X-Request-Id")
			if rid == "" {
				t.Errorf("%s: web response has no X-Request-Id", o.name)
			}
			// A download's closing record is written once the last byte
			// has left services, which may be after the client read it.
			got := waitRecords(t, db, before, len(o.want))
			if len(got) != len(o.want) {
				var names []string
				for _, ev := range got {
					names = append(names, string(ev.Action))
				}
				t.Errorf("%s: %d new audit records %v, want %d", o.name, len(got), names, len(o.want))
				continue
			}
			for i, ev := range got {
				checkRecord(t, i, ev, o.want[i], rid)
			}
			// A correlation ID finds exactly this operation's records.
			byID, err := db.Events(context.Background(), servicedb.Filter{CorrelationID: rid})
			if err != nil || len(byID) != len(o.want) {
				t.Errorf("%s: %d records by correlation ID (err %v), want %d", o.name, len(byID), err, len(o.want))
			}
		}
		rep, err := db.VerifyChain(context.Background())
		if err != nil || !rep.OK {
			t.Fatalf("chain after the operations: %+v, %v", rep, err)
		}
	})
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}
