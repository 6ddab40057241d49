package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"depot"
	"depot/internal/openapicheck"
	"depot/internal/wire"
)

// deniedBackend answers every call with "unauthorized": enough to see which
// handler a request reaches, without a services tier.
type deniedBackend struct{}

var errDenied = depot.Errorf(depot.CodeUnauthorized, "denied")

func (deniedBackend) Authorize(context.Context, depot.Caller, string, depot.Permission) (depot.Principal, error) {
	return depot.Principal{}, errDenied
}
func (deniedBackend) Put(context.Context, depot.Caller, string, io.Reader, depot.PutOptions, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) Open(context.Context, depot.Caller, string, depot.ReadOptions) (depot.Download, error) {
	return depot.Download{}, errDenied
}
func (deniedBackend) Stat(context.Context, depot.Caller, string, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) List(context.Context, depot.Caller, string, string, int) (depot.ListPage, error) {
	return depot.ListPage{}, errDenied
}
func (deniedBackend) History(context.Context, depot.Caller, string) (depot.History, error) {
	return depot.History{}, errDenied
}
func (deniedBackend) Delete(context.Context, depot.Caller, string) error        { return errDenied }
func (deniedBackend) Purge(context.Context, depot.Caller, string, string) error { return errDenied }
func (deniedBackend) Undelete(context.Context, depot.Caller, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) RestoreVersion(context.Context, depot.Caller, string, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) CreateUpload(context.Context, depot.Caller, wire.CreateUpload) (depot.Upload, error) {
	return depot.Upload{}, errDenied
}
func (deniedBackend) Upload(context.Context, depot.Caller, string, bool) (depot.Upload, error) {
	return depot.Upload{}, errDenied
}
func (deniedBackend) AppendStream(context.Context, depot.Caller, string, int64, io.Reader, int64, bool) (int64, *depot.Object, error) {
	return 0, nil, errDenied
}
func (deniedBackend) AppendChunk(context.Context, depot.Caller, string, int64, []byte, int64, bool) (int64, *depot.Object, error) {
	return 0, nil, errDenied
}
func (deniedBackend) ChunkBuffer(context.Context) ([]byte, func(), error) {
	return make([]byte, 1<<20), func() {}, nil
}
func (deniedBackend) Complete(context.Context, depot.Caller, string, int64, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) Abort(context.Context, depot.Caller, string, depot.Code) error { return errDenied }
func (deniedBackend) Concat(context.Context, depot.Caller, wire.ConcatUpload) (depot.Upload, depot.Object, error) {
	return depot.Upload{}, depot.Object{}, errDenied
}
func (deniedBackend) Holds(context.Context, depot.Caller, string) ([]wire.Hold, error) {
	return nil, errDenied
}
func (deniedBackend) PlaceHold(context.Context, depot.Caller, wire.PlaceHold) (wire.Hold, error) {
	return wire.Hold{}, errDenied
}
func (deniedBackend) ReleaseHold(context.Context, depot.Caller, string, int64) error {
	return errDenied
}
func (deniedBackend) RequestCleanup(context.Context, depot.Caller, bool) (json.RawMessage, error) {
	return nil, errDenied
}
func (deniedBackend) Ready(context.Context) error { return errDenied }

// TestRoutesServedAndDocumented checks both directions: every route in
// Routes reaches a handler (not the catch-all "no such route"), a path that
// is not a route does not, and Routes equals the operations of
// docs/openapi/public.yaml.
func TestRoutesServedAndDocumented(t *testing.T) {
	h := New(Config{Backend: deniedBackend{}}).Handler()
	fill := strings.NewReplacer("{cohort}", "c1", "{path}", "dir/file.csv", "{id}", strings.Repeat("a", 32), "{hold}", "7")
	notARoute := func(method, path string) bool {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code == http.StatusNotFound && strings.Contains(rec.Body.String(), "no such route") ||
			rec.Code == http.StatusMethodNotAllowed
	}
	for _, r := range Routes() {
		method, path, _ := strings.Cut(r, " ")
		if notARoute(method, fill.Replace(path)) {
			t.Errorf("%s is listed but not served", r)
		}
	}
	for _, r := range []string{"GET /api/v1/nothing", "GET /internal/v1/object", "PUT /api/v1/me"} {
		method, path, _ := strings.Cut(r, " ")
		if !notARoute(method, path) {
			t.Errorf("%s is served but not a route", r)
		}
	}
	spec, err := openapicheck.Operations("../docs/openapi/public.yaml")
	if err != nil {
		t.Fatal(err)
	}
	onlyCode, onlySpec := openapicheck.Diff(Routes(), spec)
	for _, r := range onlyCode {
		t.Errorf("route %s is in the code but not in the OpenAPI file", r)
	}
	for _, r := range onlySpec {
		t.Errorf("operation %s is in the OpenAPI file but not in the code", r)
	}
}
