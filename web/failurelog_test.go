package web

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"depot"
)

// brokenBackend fails like an unreachable services tier.
type brokenBackend struct{ deniedBackend }

var errHop = depot.WrapError(depot.CodeUnavailable, "services unavailable", errors.New("dial tcp 127.0.0.1:9: connect: connection refused"))

func (brokenBackend) Stat(context.Context, depot.Caller, string, string) (depot.Object, error) {
	return depot.Object{}, errHop
}

// TestFailuresAreLoggedWithCause checks that a 5xx answer is logged with
// the request ID given to the client and the error behind it, without the
// file name, and that a 4xx answer is not logged.
func TestFailuresAreLoggedWithCause(t *testing.T) {
	var logs bytes.Buffer
	h := New(Config{Backend: brokenBackend{}, Log: slog.New(slog.NewJSONHandler(&logs, nil))}).Handler()

	req := httptest.NewRequest(http.MethodHead, "/api/v1/files/c1/secret-name.csv", nil)
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	id := rec.Header().Get("X-Request-Id")
	got := logs.String()
	for _, want := range []string{`"msg":"request failed"`, `"request_id":"` + id + `"`, `"status":503`, `"code":"unavailable"`, "connection refused"} {
		if id == "" || !strings.Contains(got, want) {
			t.Fatalf("log %q lacks %s", got, want)
		}
	}
	if strings.Contains(got, "secret-name") {
		t.Fatalf("the file name reached the log: %s", got)
	}

	logs.Reset()
	req = httptest.NewRequest(http.MethodGet, "/no/such/route", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if logs.Len() != 0 {
		t.Fatalf("a 404 was logged: %s", logs.String())
	}
}
