package servicedb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

func TestOpenSQLiteURLForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, tc := range []struct{ url, file string }{
		{"sqlite://" + filepath.Join(dir, "abs", "a.db"), filepath.Join(dir, "abs", "a.db")},
		{"sqlite://rel/b.db", filepath.Join(dir, "rel", "b.db")},
		{"sqlite:c.db", filepath.Join(dir, "c.db")},
		{"sqlite:" + filepath.Join(dir, "d.db"), filepath.Join(dir, "d.db")},
	} {
		db, err := servicedb.Open(ctx, tc.url)
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.url, err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("Migrate(%s): %v", tc.url, err)
		}
		if db.Engine() != servicedb.EngineSQLite {
			t.Fatalf("Engine = %s", db.Engine())
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(tc.file)
		if err != nil {
			t.Fatalf("%s: database file: %v", tc.url, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", tc.file, st.Mode().Perm())
		}
	}
	for _, bad := range []string{"", "mysql://x", "sqlite:", "sqlite://"} {
		_, err := servicedb.Open(ctx, bad)
		wantCode(t, err, depot.CodeInvalid)
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := servicedb.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	wantCode(t, err, depot.CodeUnavailable)
}

// A database that cannot be written fails appends closed with
// CodeUnavailable, and so does a closed handle.
func TestAppendFailsClosed(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ctx := context.Background()
		db := openDB(t, e.URL)
		appendN(t, db, 1)
		ro := e.URL + "?_pragma=query_only(1)"
		if e.Engine == servicedbtest.Postgres {
			ro = e.URL + "&default_transaction_read_only=on"
		}
		rodb, err := servicedb.Open(ctx, ro)
		if err != nil {
			t.Fatalf("Open read-only: %v", err)
		}
		_, err = rodb.Append(ctx, sampleEvent(1))
		wantCode(t, err, depot.CodeUnavailable)
		if err := rodb.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = rodb.Append(ctx, sampleEvent(1))
		wantCode(t, err, depot.CodeUnavailable)
		wantCode(t, rodb.Ping(ctx), depot.CodeUnavailable)
		verifyOK(t, db, 1)
	})
}
