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

func (deniedBackend) Put(context.Context, string, io.Reader, depot.PutOptions) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) Open(context.Context, string, *depot.Range) (depot.Object, io.ReadCloser, error) {
	return depot.Object{}, nil, errDenied
}
func (deniedBackend) Stat(context.Context, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) Delete(context.Context, string) error { return errDenied }
func (deniedBackend) List(context.Context, string, string, int) (depot.ListPage, error) {
	return depot.ListPage{}, errDenied
}
func (deniedBackend) Authenticate(context.Context, string, depot.Permission) (depot.Principal, error) {
	return depot.Principal{}, errDenied
}
func (deniedBackend) CreateUpload(context.Context, wire.CreateUpload) (depot.Upload, error) {
	return depot.Upload{}, errDenied
}
func (deniedBackend) Upload(context.Context, string, depot.Permission) (depot.Upload, error) {
	return depot.Upload{}, errDenied
}
func (deniedBackend) AppendStream(context.Context, string, int64, io.Reader, bool) (int64, error) {
	return 0, errDenied
}
func (deniedBackend) Complete(context.Context, string, int64, string) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) Abort(context.Context, string) error { return errDenied }
func (deniedBackend) PutSession(context.Context, string, io.Reader, depot.PutOptions, *depot.Upload) (depot.Object, error) {
	return depot.Object{}, errDenied
}
func (deniedBackend) RequestCleanup(context.Context, bool) (json.RawMessage, error) {
	return nil, errDenied
}
func (deniedBackend) ChunkSize() int { return 1 << 20 }
func (deniedBackend) Append(context.Context, string, int64, []byte, bool) (int64, error) {
	return 0, errDenied
}
func (deniedBackend) ChunkBuffer(context.Context) ([]byte, func(), error) {
	return make([]byte, 1<<20), func() {}, nil
}

// TestRoutesServedAndDocumented checks both directions: every route in
// Routes reaches a handler (not the catch-all "no such route"), a path that
// is not a route does not, and Routes equals the operations of
// docs/openapi/public.yaml.
func TestRoutesServedAndDocumented(t *testing.T) {
	h := New(Config{Backend: deniedBackend{}}).Handler()
	fill := strings.NewReplacer("{cohort}", "c1", "{path}", "dir/file.csv", "{id}", strings.Repeat("a", 32))
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
