package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"testing"
)

type fileJSON struct {
	Cohort string `json:"cohort"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Class  string `json:"class"`
}

func TestRoundTrips(t *testing.T) {
	testRoundTrips(t, newCluster(t, clusterOpts{}))
}

// testRoundTrips runs PUT, GET, Range GET, HEAD, multipart POST, listing and
// DELETE through the web tier of c, whatever its storage (see TestS3RoundTrips).
func testRoundTrips(t *testing.T, c *cluster) {
	small, smallSum := payloadBytes(1, 100_000)
	big, bigSum := payloadBytes(2, 20<<20+12345) // several chunks of 8 MiB

	for _, tc := range []struct {
		name string
		data []byte
		sum  string
	}{{"tables/small.csv", small, smallSum}, {"tables/big.csv", big, bigSum}, {"empty.txt", nil, sha(nil)}} {
		resp := c.do("PUT", "/api/v1/files/c1/"+tc.name, bytes.NewReader(tc.data), nil)
		var got fileJSON
		if err := json.Unmarshal(expectStatus(t, resp, http.StatusCreated), &got); err != nil {
			t.Fatal(err)
		}
		if got.Path != tc.name || got.Size != int64(len(tc.data)) || got.SHA256 != tc.sum {
			t.Fatalf("PUT %s answered %+v, want size %d sha %s", tc.name, got, len(tc.data), tc.sum)
		}
		body := expectStatus(t, c.do("GET", "/api/v1/files/c1/"+tc.name, nil, nil), http.StatusOK)
		if !bytes.Equal(body, tc.data) {
			t.Fatalf("GET %s: %d bytes differ from the %d uploaded", tc.name, len(body), len(tc.data))
		}
		onDisk, err := c.stored("c1/" + tc.name)
		if err != nil || sha(onDisk) != tc.sum {
			t.Fatalf("stored file of %s: err %v, sha %s", tc.name, err, sha(onDisk))
		}
	}

	// Range GET.
	resp := c.do("GET", "/api/v1/files/c1/tables/big.csv", nil, map[string]string{"Range": "bytes=1000-8389999"})
	part := expectStatus(t, resp, http.StatusPartialContent)
	if !bytes.Equal(part, big[1000:8390000]) {
		t.Fatalf("range: got %d bytes", len(part))
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-8389999/%d", len(big)) {
		t.Fatalf("Content-Range %q", cr)
	}
	resp = c.do("GET", "/api/v1/files/c1/tables/small.csv", nil, map[string]string{"Range": "bytes=99990-"})
	if part := expectStatus(t, resp, http.StatusPartialContent); !bytes.Equal(part, small[99990:]) {
		t.Fatalf("open range: %d bytes", len(part))
	}
	expectStatus(t, c.do("GET", "/api/v1/files/c1/tables/small.csv", nil, map[string]string{"Range": "bytes=200000-"}), http.StatusRequestedRangeNotSatisfiable)

	// HEAD.
	resp = c.do("HEAD", "/api/v1/files/c1/tables/big.csv", nil, nil)
	expectStatus(t, resp, http.StatusOK)
	if resp.Header.Get("Depot-Sha256") != bigSum || resp.ContentLength != int64(len(big)) {
		t.Fatalf("HEAD: sha %q length %d", resp.Header.Get("Depot-Sha256"), resp.ContentLength)
	}

	// Multipart POST with several files.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("note", "ignored")
	parts := map[string][]byte{}
	for i := range 3 {
		data, _ := payloadBytes(uint64(10+i), 9<<20+i*1000)
		name := fmt.Sprintf("part-%d.tsv", i)
		parts[name] = data
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(data)
	}
	mw.Close()
	resp = c.do("POST", "/api/v1/files/c1/batch/", bytes.NewReader(mp.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
	var posted []fileJSON
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusCreated), &posted); err != nil {
		t.Fatal(err)
	}
	if len(posted) != 3 {
		t.Fatalf("POST stored %d files", len(posted))
	}
	for _, f := range posted {
		name := filepath.Base(f.Path)
		if f.SHA256 != sha(parts[name]) || f.Path != "batch/"+name {
			t.Fatalf("POST answered %+v", f)
		}
		got := expectStatus(t, c.do("GET", "/api/v1/files/c1/batch/"+name, nil, nil), http.StatusOK)
		if !bytes.Equal(got, parts[name]) {
			t.Fatalf("GET of posted %s differs", name)
		}
	}

	// Listing, paginated.
	var seen []string
	after := ""
	for range 10 {
		var page struct {
			Files []fileJSON `json:"files"`
			Next  string     `json:"next"`
		}
		body := expectStatus(t, c.do("GET", "/api/v1/files/c1/?limit=2&after="+after, nil, nil), http.StatusOK)
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Files {
			seen = append(seen, f.Path)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	want := []string{"batch/part-0.tsv", "batch/part-1.tsv", "batch/part-2.tsv", "empty.txt", "tables/big.csv", "tables/small.csv"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("listing %v, want %v", seen, want)
	}
	body := expectStatus(t, c.do("GET", "/api/v1/files/c1/batch/", nil, nil), http.StatusOK)
	if !bytes.Contains(body, []byte("part-1.tsv")) || bytes.Contains(body, []byte("small.csv")) {
		t.Fatalf("folder listing: %s", body)
	}

	// DELETE.
	expectStatus(t, c.do("DELETE", "/api/v1/files/c1/tables/small.csv", nil, nil), http.StatusNoContent)
	expectStatus(t, c.do("GET", "/api/v1/files/c1/tables/small.csv", nil, nil), http.StatusNotFound)
	expectStatus(t, c.do("DELETE", "/api/v1/files/c1/tables/small.csv", nil, nil), http.StatusNotFound)
}
