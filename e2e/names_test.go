package e2e

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestNamesNormalisedAndSpoofsRefused: café.csv written in NFC and in NFD
// (as macOS writes it) is one file, stored and listed in NFC, through PUT,
// multipart and tus; names that spoof listings and audit output or break on
// Windows shares are refused with a 400 that says why, through every
// entrance. (The review stored both café.csv forms as two files, and
// U+202E, U+200B, fullwidth dots, U+2215, blank and dot-ending names and
// CON/NUL.)
func TestNamesNormalisedAndSpoofsRefused(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	const nfc, nfd = "caf\u00e9.csv", "cafe\u0301.csv"
	path := func(name string) string { return "/api/v1/files/c1/" + url.PathEscape(name) }

	expectStatus(t, c.do("PUT", path(nfd), strings.NewReader("first"), nil), http.StatusCreated)
	expectStatus(t, c.do("PUT", path(nfc), strings.NewReader("second"), nil), http.StatusCreated)
	if got := expectStatus(t, c.do("GET", path(nfd), nil, nil), http.StatusOK); string(got) != "second" {
		t.Fatalf("GET of the NFD name: %q, want the one file's latest content", got)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "r\u0065\u0301sum\u0065\u0301.txt") // résumé.txt in NFD
	fw.Write([]byte("multipart"))
	mw.Close()
	expectStatus(t, c.do("POST", "/api/v1/files/c1/", &mp, map[string]string{"Content-Type": mw.FormDataContentType()}), http.StatusCreated)
	resp := tusReq(t, c.web.url(), c.token, http.MethodPost, tusPath, []byte("tus"), map[string]string{
		"Upload-Length": "3", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "na\u0303o.txt"), // não.txt in NFD
	})
	wantStatus(t, "tus creation with an NFD name", resp, http.StatusCreated)

	var list struct {
		Files []struct{ Path string } `json:"files"`
	}
	if err := json.Unmarshal(expectStatus(t, c.do("GET", "/api/v1/files/c1/", nil, nil), http.StatusOK), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list.Files {
		names = append(names, f.Path)
	}
	want := []string{nfc, "n\u00e3o.txt", "r\u00e9sum\u00e9.txt"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Fatalf("listing %q, want %q: one file per name, in NFC", names, want)
	}

	for _, tc := range []struct{ name, why string }{
		{"\u202egpj.exe", "formatting character"},
		{"a\u200bb.csv", "formatting character"},
		{"\uff0e\uff0e", "looks like a dot"},
		{"a\u2215b.csv", "looks like a dot, a slash"},
		{"   ", "only of spaces"},
		{"report.", "ends with a dot or a space"},
		{"report ", "ends with a dot or a space"},
		{"CON", "reserved by Windows"},
		{"nul.txt", "reserved by Windows"},
	} {
		check := func(entrance string, status int, body []byte) {
			t.Helper()
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if status != http.StatusBadRequest || e.Error.Code != "invalid_path" || !strings.Contains(e.Error.Message, tc.why) {
				t.Errorf("%s of %q: %d %s, want 400 invalid_path saying %q", entrance, tc.name, status, body, tc.why)
			}
		}
		resp := c.do("PUT", path(tc.name), strings.NewReader("x"), nil)
		check("PUT", resp.StatusCode, readAll(t, resp))

		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		fw, _ := mw.CreateFormFile("file", tc.name)
		fw.Write([]byte("x"))
		mw.Close()
		resp = c.do("POST", "/api/v1/files/c1/", &mp, map[string]string{"Content-Type": mw.FormDataContentType()})
		check("multipart", resp.StatusCode, readAll(t, resp))

		req, _ := http.NewRequest(http.MethodPost, c.web.url()+tusPath, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", "1")
		req.Header.Set("Upload-Metadata", tusMeta("cohort", "c1", "filename", tc.name))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		check("tus", r.StatusCode, readAll(t, r))
	}
}
