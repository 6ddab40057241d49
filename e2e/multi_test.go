package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// Short periods of the maintenance jobs in TestMultiInstance (1 s is the
// minimum serve accepts).
var multiIntervals = map[string]time.Duration{"cleanup": 2 * time.Second, "verify": 3 * time.Second, "report": 2 * time.Second}

// TestMultiInstance runs two web and two services processes sharing one
// PostgreSQL schema and one S3 bucket, web i talking to services i:
//
//   - a tus upload begun through web 1 → services 1 is finished through
//     web 2 → services 2, with services 1 stopped in between;
//   - every web instance serves every file, whichever pair stored it;
//   - concurrent uploads through both pairs leave one valid audit chain
//     (seq 1..N, each prev_hash the previous hash, VerifyChain OK);
//   - two PATCHes at the same offset of one upload through the two pairs
//     at once cannot both be applied;
//   - each periodic maintenance job runs once per period, not once per
//     services instance.
func TestMultiInstance(t *testing.T) {
	dbURL := servicedbtest.PostgresURL(t)
	storageURL, storageEnv := s3Storage(t)
	began := time.Now()
	svcEnv := func(node string) map[string]string {
		env := map[string]string{"DEPOT_NODE_NAME": node}
		for job, iv := range multiIntervals {
			env["DEPOT_"+strings.ToUpper(job)+"_INTERVAL"] = iv.String()
		}
		return env
	}
	c := newCluster(t, clusterOpts{dbURL: dbURL, storageURL: storageURL, storageEnv: storageEnv,
		servicesEnv: svcEnv("services-1"), webEnv: map[string]string{"DEPOT_NODE_NAME": "web-1"}})
	svc1, web1 := c.services, c.web
	c.startServices(svcEnv("services-2"))
	svc2 := c.services
	c.startWeb(svc2.url(), map[string]string{"DEPOT_NODE_NAME": "web-2"})
	web2 := c.web
	webs := []*proc{web1, web2}

	db, err := servicedb.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	t.Run("any instance serves any download", func(t *testing.T) {
		for i, w := range webs {
			data, sum := payloadBytes(uint64(40+i), 9<<20+i) // more than one S3 part
			name := fmt.Sprintf("multi/stored-via-%d.bin", i+1)
			resp := multiDo(t, w, c.token, "PUT", "/api/v1/files/c1/"+name, data, nil)
			expectStatus(t, resp, http.StatusCreated)
			for j, r := range webs {
				got := expectStatus(t, multiDo(t, r, c.token, "GET", "/api/v1/files/c1/"+name, nil, nil), http.StatusOK)
				if sha(got) != sum {
					t.Fatalf("GET via web %d of a file stored via web %d: %d bytes, sha %s, want %s", j+1, i+1, len(got), sha(got), sum)
				}
				resp := multiDo(t, r, c.token, "GET", "/api/v1/files/c1/"+name, nil, map[string]string{"Range": "bytes=8388600-8388615"})
				if part := expectStatus(t, resp, http.StatusPartialContent); !bytes.Equal(part, data[8388600:8388616]) {
					t.Fatalf("Range GET via web %d across the part boundary differs", j+1)
				}
			}
		}
	})

	t.Run("concurrent writers keep one audit chain", func(t *testing.T) {
		before := auditAfter(t, db, 0)
		const n = 16
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			w := webs[i%2]
			wg.Go(func() {
				data, sum := payloadBytes(uint64(200+i), 50_000+i*997)
				req, _ := http.NewRequest("PUT", w.url()+fmt.Sprintf("/api/v1/files/c1/concurrent/f%02d.csv", i), bytes.NewReader(data))
				req.Header.Set("Authorization", "Bearer "+c.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b := readAll(t, resp)
				if resp.StatusCode != http.StatusCreated || !bytes.Contains(b, []byte(sum)) {
					errs <- fmt.Errorf("PUT f%02d via %s: %d %s", i, w.url(), resp.StatusCode, b)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		evs := checkLinear(t, db)
		perWeb := map[string]int{}
		for _, ev := range evs[len(before):] {
			if ev.Action == depot.ActionUploadCompleted && strings.HasPrefix(ev.Key, "c1/concurrent/") {
				perWeb[ev.WebNode]++
			}
		}
		if perWeb["web-1"] != n/2 || perWeb["web-2"] != n/2 {
			t.Errorf("upload.completed records per web node %v, want %d each", perWeb, n/2)
		}
		t.Logf("%d audit records, chain verified; completions per web node %v", len(evs), perWeb)
	})

	t.Run("two writers at the same offset", func(t *testing.T) {
		// Both PATCHes carry 3 MiB at offset 0 of one upload, different
		// bytes; they race through web 1 → services 1 and web 2 →
		// services 2. At most one may be applied: the other gets 409.
		const size = 4 << 20
		a, _ := payloadBytes(60, 3<<20)
		b, _ := payloadBytes(61, 3<<20)
		rest, _ := payloadBytes(62, size-3<<20)
		for round := range 3 {
			loc := tusCreate(t, web1.url(), c.token, size, fmt.Sprintf("race-%d.bin", round))
			var wg sync.WaitGroup
			codes := make([]int, 2)
			start := make(chan struct{})
			for i, body := range [][]byte{a, b} {
				wg.Go(func() {
					<-start
					resp := tusReq(t, webs[i].url(), c.token, http.MethodPatch, loc, body, map[string]string{"Upload-Offset": "0"})
					codes[i] = resp.StatusCode
				})
			}
			close(start)
			wg.Wait()
			slices.Sort(codes)
			if codes[0] != http.StatusNoContent || codes[1] != http.StatusConflict {
				t.Errorf("round %d: concurrent PATCHes at offset 0 answered %v, want one 204 and one 409", round, codes)
			}
			resp := tusReq(t, web2.url(), c.token, http.MethodHead, loc, nil, nil)
			off := tusOffset(t, resp)
			if off != 3<<20 {
				t.Fatalf("round %d: offset %d after the race, want %d", round, off, 3<<20)
			}
			wantStatus(t, "PATCH rest", tusReq(t, web1.url(), c.token, http.MethodPatch, loc, rest, map[string]string{"Upload-Offset": strconv.Itoa(3 << 20)}), http.StatusNoContent)
			key := fmt.Sprintf("c1/race-%d.bin", round)
			got, err := c.stored(key)
			if err != nil {
				t.Fatal(err)
			}
			recs := completedRecords(t, c, key)
			winA, winB := bytes.Equal(got, append(slices.Clone(a), rest...)), bytes.Equal(got, append(slices.Clone(b), rest...))
			if !winA && !winB {
				t.Errorf("round %d: stored object is neither writer's bytes (a mix)", round)
			}
			if len(recs) != 1 || recs[0].SHA256 != sha(got) {
				t.Errorf("round %d: %d completion records, audited sha256 %v, stored object sha256 %s", round, len(recs), recs, sha(got))
			}
		}
	})

	t.Run("upload begun on one pair finished on the other", func(t *testing.T) {
		data, sum := payloadBytes(50, 13<<20+4321)
		const first = 7 << 20 // one 5 MiB+ part goes to S3, the rest is staged as a tail
		loc := tusCreate(t, web1.url(), c.token, int64(len(data)), "multi/resumed.bin")
		wantStatus(t, "PATCH via web 1", tusReq(t, web1.url(), c.token, http.MethodPatch, loc, data[:first], map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
		// Nothing of the upload may live in services 1 (or web 1): stop
		// both; web 2 talks only to services 2.
		svc1.stop()
		web1.stop()
		resp := tusReq(t, web2.url(), c.token, http.MethodHead, loc, nil, nil)
		wantStatus(t, "HEAD via web 2", resp, http.StatusOK)
		if off := tusOffset(t, resp); off != first {
			t.Fatalf("offset via web 2: %d, want %d", off, first)
		}
		resp = tusReq(t, web2.url(), c.token, http.MethodPatch, loc, data[first:], map[string]string{"Upload-Offset": strconv.Itoa(first)})
		wantStatus(t, "PATCH via web 2", resp, http.StatusNoContent)
		got, err := c.stored("c1/multi/resumed.bin")
		if err != nil || sha(got) != sum {
			t.Fatalf("stored object: %d bytes, sha %s, err %v; want sha %s", len(got), sha(got), err, sum)
		}
		recs := completedRecords(t, c, "c1/multi/resumed.bin")
		if len(recs) != 1 || recs[0].SHA256 != sum || recs[0].WebNode != "web-2" {
			t.Fatalf("upload.completed records %+v, want one by web-2 with sha %s", recs, sum)
		}
	})

	t.Run("periodic jobs run once per period", func(t *testing.T) {
		// Let services 2 (now alone) run the jobs for a while too: the
		// runs span the time both instances were up and the takeover.
		time.Sleep(time.Until(began.Add(16 * time.Second)))
		elapsed := time.Since(began)
		runs, err := db.JobRuns(context.Background(), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		byJob := map[string][]servicedb.JobRun{}
		nodes := map[string]bool{}
		for _, r := range runs {
			if r.Trigger == "schedule" {
				byJob[r.Job] = append(byJob[r.Job], r)
				nodes[r.Node] = true
			}
		}
		for job, iv := range multiIntervals {
			rs := byJob[job]
			sort.Slice(rs, func(i, j int) bool { return rs[i].Started.Before(rs[j].Started) })
			var starts []string
			for i, r := range rs {
				starts = append(starts, fmt.Sprintf("%s@%s", r.Node, r.Started.Sub(began).Round(10*time.Millisecond)))
				if i > 0 && r.Started.Sub(rs[i-1].Started) < iv/2 {
					t.Errorf("job %s ran twice within %s (period %s): %v", job, r.Started.Sub(rs[i-1].Started), iv, starts)
				}
				// Services 1 was stopped mid-test: its run in progress
				// then is interrupted, which is not a failure.
				interrupted := r.Outcome == servicedb.RunInterrupted && r.Node == "services-1"
				if r.Outcome != servicedb.RunSuccess && r.Outcome != servicedb.RunRunning && !interrupted {
					t.Errorf("job %s run %d: %s %s", job, r.ID, r.Outcome, r.ErrorCode)
				}
			}
			if max := int(elapsed/iv) + 1; len(rs) < 2 || len(rs) > max {
				t.Errorf("job %s (every %s) ran %d times in %s, want 2..%d", job, iv, len(rs), elapsed.Round(time.Second), max)
			}
			t.Logf("job %s every %s: %d runs in %s: %s", job, iv, len(rs), elapsed.Round(time.Second), strings.Join(starts, " "))
		}
		t.Logf("scheduled runs by nodes %v", nodes)
	})
}

// multiDo sends a request to web process w with token.
func multiDo(t *testing.T, w *proc, token, method, path string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, w.url()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}
