// Package servicedbtest gives tests a fresh, empty database URL on every engine
// that servicedb supports, so one test suite runs on SQLite and PostgreSQL.
//
// SQLite databases live in t.TempDir(). PostgreSQL databases are fresh
// schemas (test_<random>) in the server named by DEPOT_TEST_POSTGRES_URL
// (default DefaultPostgresURL), selected with search_path in the returned
// URL and dropped when the test ends, so tests may run in parallel with each
// other and with other packages. When PostgreSQL cannot be reached the
// PostgreSQL engine is skipped, unless CI=true, where the test fails.
//
// The package does not import servicedb (servicedb's own tests use it); open the
// URLs with servicedb.Open.
package servicedbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DefaultPostgresURL is the test server used when DEPOT_TEST_POSTGRES_URL is
// unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Engine names, as servicedb.DB.Engine reports them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// EngineURL is a fresh, empty database on one engine.
type EngineURL struct {
	Engine string // SQLite or Postgres
	URL    string // for servicedb.Open and DEPOT_DATABASE_URL
}

// Run runs fn as one subtest per engine ("sqlite", "postgres"), each with a
// fresh database. When PostgreSQL is unreachable its subtest is skipped, or
// fails when CI=true.
func Run(t *testing.T, fn func(t *testing.T, e EngineURL)) {
	t.Helper()
	t.Run(SQLite, func(t *testing.T) { fn(t, EngineURL{Engine: SQLite, URL: SQLiteURL(t)}) })
	t.Run(Postgres, func(t *testing.T) { fn(t, EngineURL{Engine: Postgres, URL: PostgresURL(t)}) })
}

// Engines returns a fresh database on every engine: SQLite always, and
// PostgreSQL when it is reachable. When it is not, Engines fails the test if
// CI=true and otherwise logs that PostgreSQL is skipped and returns SQLite
// only (use Run to get a visible SKIP instead).
func Engines(t testing.TB) []EngineURL {
	t.Helper()
	out := []EngineURL{{Engine: SQLite, URL: SQLiteURL(t)}}
	pgURL, err := newSchema(t)
	if err != nil {
		if ci() {
			t.Fatalf("servicedbtest: PostgreSQL unreachable and CI=true: %v", err)
		}
		t.Logf("servicedbtest: PostgreSQL unreachable, testing SQLite only: %v", err)
		return out
	}
	return append(out, EngineURL{Engine: Postgres, URL: pgURL})
}

// SQLiteURL returns the URL of a new SQLite database file in t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "depot.db")
}

// PostgresURL returns the URL of a new, empty schema, dropped when the test
// ends. It skips the test when PostgreSQL is unreachable, or fails it when
// CI=true.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u, err := newSchema(t)
	if err != nil {
		if ci() {
			t.Fatalf("servicedbtest: PostgreSQL unreachable and CI=true: %v", err)
		}
		t.Skipf("servicedbtest: PostgreSQL unreachable (set DEPOT_TEST_POSTGRES_URL): %v", err)
	}
	return u
}

// BaseURL is the PostgreSQL server URL tests use.
func BaseURL() string {
	if u := os.Getenv("DEPOT_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

func ci() bool { return os.Getenv("CI") == "true" }

// newSchema creates schema test_<random> and registers its removal.
func newSchema(t testing.TB) (string, error) {
	base := BaseURL()
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return "", err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	schema := "test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", err
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dropSchema removes a test schema with everything in it.
func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Errorf("servicedbtest: drop schema %s: %v", schema, err)
		return
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		t.Errorf("servicedbtest: drop schema %s: %v", schema, err)
	}
}
