package httpauth

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wireHeaders returns the value of every constant named Header… in
// internal/wire: the headers of the internal API, by name.
func wireHeaders(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../wire/wire.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Header") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				out[name.Name] = v
			}
		}
		return true
	})
	return out
}

// servicesReads returns the request headers the services package reads
// with r.Header.Get or r.Header.Values, given as string literals or as
// wire.Header… constants (resolved with wire).
func servicesReads(t *testing.T, wire map[string]string) []string {
	t.Helper()
	files, err := filepath.Glob("../../services/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no services sources: %v", err)
	}
	var out []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Get" && sel.Sel.Name != "Values") {
				return true
			}
			if recv, ok := sel.X.(*ast.SelectorExpr); !ok || recv.Sel.Name != "Header" {
				return true
			}
			switch a := call.Args[0].(type) {
			case *ast.BasicLit:
				v, _ := strconv.Unquote(a.Value)
				out = append(out, v)
			case *ast.SelectorExpr:
				if pkg, ok := a.X.(*ast.Ident); ok && pkg.Name == "wire" {
					if v, ok := wire[a.Sel.Name]; ok {
						out = append(out, v)
					} else {
						t.Errorf("%s reads wire.%s, which is not a Header constant of internal/wire", path, a.Sel.Name)
					}
				}
			}
			return true
		})
	}
	return out
}

// TestEveryHeaderServicesReadsIsSigned walks every header of the internal
// API (internal/wire) and every header the services package reads, and
// proves for each that changing, removing or adding it breaks the
// signature: none can be altered in a captured request (the review removed
// Depot-Permission and turned a 403 into a 200).
func TestEveryHeaderServicesReadsIsSigned(t *testing.T) {
	wire := wireHeaders(t)
	names := map[string]bool{}
	for _, v := range wire {
		names[v] = true
	}
	for _, v := range servicesReads(t, wire) {
		names[v] = true
	}
	for _, must := range []string{"Depot-Permission", "Depot-Key", "Depot-Offset", "Depot-User-Token", "Range", "Depot-Cohort"} {
		if !names[must] {
			t.Fatalf("the walk did not find %s: the source parsing is broken", must)
		}
	}
	for _, name := range SignedStandardHeaders {
		names[name] = true
	}
	delete(names, Header)

	now := time.Unix(1_800_000_000, 0)
	old, cur := "previous-key-0123456789abcdef0123456789", "current-key-0123456789abcdef0123456789"
	v := NewVerifier([]string{old, cur}, time.Minute, func() time.Time { return now })
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, name := range sorted {
		if !IsSigned(name) {
			t.Errorf("%s is read by services but not signed", name)
			continue
		}
		for _, key := range []string{old, cur} {
			build := func(with bool) *http.Request {
				req := httptest.NewRequest("PATCH", "http://services/internal/v1/uploads/abc?limit=5", strings.NewReader("body"))
				for _, other := range sorted {
					if other != name || with {
						req.Header.Set(other, "value-of-"+other)
					}
				}
				return req
			}
			mutations := map[string]struct {
				with   bool
				mutate func(*http.Request)
			}{
				"changed":         {true, func(r *http.Request) { r.Header.Set(name, "other") }},
				"removed":         {true, func(r *http.Request) { r.Header.Del(name) }},
				"added":           {false, func(r *http.Request) { r.Header.Set(name, "value-of-"+name) }},
				"second value":    {true, func(r *http.Request) { r.Header.Add(name, "more") }},
				"lower-case name": {true, func(r *http.Request) { r.Header.Del(name); r.Header[strings.ToLower(name)] = []string{"other"} }},
			}
			for what, m := range mutations {
				req := build(m.with)
				Sign(req, []byte(key), now)
				if err := v.Verify(req.Clone(req.Context())); err != nil {
					t.Fatalf("%s: an unaltered request is refused: %v", name, err)
				}
				req = build(m.with)
				Sign(req, []byte(key), now)
				m.mutate(req)
				if err := v.Verify(req); !errors.Is(err, ErrBadSig) {
					t.Errorf("%s %s after signing: %v, want %v", name, what, err, ErrBadSig)
				}
			}
		}
	}
}

// TestQueryAndLengthSigned: the query string, the content length and the
// method are part of what is signed.
func TestQueryAndLengthSigned(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key := "a-key-0123456789abcdef0123456789abcdef"
	v := NewVerifier([]string{key}, time.Minute, func() time.Time { return now })
	for what, mutate := range map[string]func(*http.Request){
		"query changed": func(r *http.Request) { r.URL.RawQuery = "limit=6" },
		"query removed": func(r *http.Request) { r.URL.RawQuery = "" },
		"query added":   func(r *http.Request) { r.URL.RawQuery += "&dry_run=1" },
		"length":        func(r *http.Request) { r.ContentLength = 3 },
		"method":        func(r *http.Request) { r.Method = "PUT" },
	} {
		req := httptest.NewRequest("PATCH", "http://services/internal/v1/uploads/abc?limit=5", strings.NewReader("body"))
		Sign(req, []byte(key), now)
		mutate(req)
		if err := v.Verify(req); !errors.Is(err, ErrBadSig) {
			t.Errorf("%s: %v, want %v", what, err, ErrBadSig)
		}
	}
	// A request signed with the previous scheme is refused by name.
	req := httptest.NewRequest("GET", "http://services/internal/v1/object", nil)
	req.Header.Set(Header, "v1 ts=1800000000 nonce=00112233445566778899aabbccddeeff sig=00")
	if err := v.Verify(req); !errors.Is(err, ErrScheme) {
		t.Errorf("v1 signature: %v, want %v", err, ErrScheme)
	}
}
