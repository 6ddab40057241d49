package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// cleanupSummary is the part of a cleanup result (a run's summary, or
// `depot cleanup --json`) that says what it did to uploads and leftovers.
type cleanupSummary struct {
	UploadsOpen    int `json:"uploads_open"`
	UploadsExpired int `json:"uploads_expired"`
	OrphanObjects  int `json:"orphan_objects"`
	StraysRemoved  int `json:"strays_removed"`
}

// TestCleanupDuringStreamingUpload: cleanup runs — the scheduled job every
// second in services, and `depot cleanup` as a process of its own — while
// a real upload streams through web and is held between parts of its body,
// with the shortest grace and lease cleanup allows (1 s). Each run sees the
// upload session open and leaves it, its staging area and its chunks alone;
// the upload then commits byte-exact, and the audit trail holds no
// expiry or removal of it. Both engines.
func TestCleanupDuringStreamingUpload(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{
			dbURL:       freshURL(t, e.Engine),
			servicesEnv: map[string]string{"DEPOT_CLEANUP_INTERVAL": "1s", "DEPOT_STRAY_GRACE": "1s", "DEPOT_CLEANUP_LEASE": "1s"},
			webEnv:      map[string]string{"DEPOT_CHUNK_SIZE": "65536"},
		})
		env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir(),
			"DEPOT_STRAY_GRACE": "1s", "DEPOT_CLEANUP_LEASE": "1s"}
		db := openAuditDB(t, c.dbURL)
		const parts, partSize = 4, 200_000
		data, sum := payloadBytes(7, parts*partSize)

		pr, pw := io.Pipe()
		req, err := http.NewRequest("PUT", c.web.url()+"/api/v1/files/c1/streamed.csv", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(data))
		req.Header.Set("Authorization", "Bearer "+c.token)
		type answer struct {
			status int
			body   []byte
			err    error
		}
		done := make(chan answer, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- answer{resp.StatusCode, b, err}
		}()

		var uploadID string
		for i := range parts {
			if _, err := pw.Write(data[i*partSize : (i+1)*partSize]); err != nil {
				t.Fatal(err)
			}
			if i == parts-1 {
				break
			}
			if uploadID == "" {
				uploadID = waitOpenUpload(t, db)
			}
			// Held mid-stream: a scheduled run and a run of another
			// process both see the session and leave it.
			var run cleanupSummary
			if err := json.Unmarshal([]byte(waitCleanupRun(t, db, time.Now())), &run); err != nil {
				t.Fatal(err)
			}
			var cli cleanupSummary
			if err := json.Unmarshal([]byte(depotCLI(t, env, "cleanup", "--json")), &cli); err != nil {
				t.Fatal(err)
			}
			for _, r := range []cleanupSummary{run, cli} {
				if r.UploadsOpen != 1 || r.UploadsExpired != 0 || r.StraysRemoved != 0 || r.OrphanObjects != 0 {
					t.Fatalf("cleanup during the upload (part %d): %+v", i, r)
				}
			}
		}
		pw.Close()
		a := <-done
		if a.err != nil || a.status != http.StatusCreated {
			t.Fatalf("PUT: %d %v: %s", a.status, a.err, a.body)
		}
		var v versionJSON
		if err := json.Unmarshal(a.body, &v); err != nil || v.SHA256 != sum || v.Version != uploadID {
			t.Fatalf("committed %+v (%v), want sha %s of upload %s", v, err, sum, uploadID)
		}
		got := expectStatus(t, c.do("GET", "/api/v1/files/c1/streamed.csv", nil, nil), http.StatusOK)
		if !bytes.Equal(got, data) {
			t.Fatal("the streamed file is not byte-exact")
		}
		for _, ev := range auditAfter(t, db, 0) {
			if ev.UploadID == uploadID && ev.Action != depot.ActionUploadStarted && ev.Action != depot.ActionUploadCompleted ||
				ev.Action == depot.ActionUploadExpired || ev.Metadata["object"] == uploadID {
				t.Fatalf("cleanup touched the upload: %+v", ev)
			}
		}
	})
}

// waitOpenUpload waits until services holds exactly one upload session and
// returns its ID.
func waitOpenUpload(t *testing.T, db *servicedb.DB) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ups, err := db.Uploads(context.Background(), servicedb.UploadFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) == 1 {
			return ups[0].ID
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no upload session appeared")
	return ""
}
