package servicedbtest_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

func TestEnginesAreFreshAndDropped(t *testing.T) {
	var pgSchema string
	t.Run("use", func(t *testing.T) {
		engines := servicedbtest.Engines(t)
		if len(engines) == 0 || engines[0].Engine != servicedbtest.SQLite {
			t.Fatalf("Engines = %+v", engines)
		}
		for _, e := range engines {
			db, err := servicedb.Open(context.Background(), e.URL)
			if err != nil {
				t.Fatalf("%s: Open: %v", e.Engine, err)
			}
			if db.Engine() != e.Engine {
				t.Fatalf("Engine() = %s, want %s", db.Engine(), e.Engine)
			}
			if err := db.Migrate(context.Background()); err != nil {
				t.Fatalf("%s: Migrate: %v", e.Engine, err)
			}
			if head, _, err := db.Head(context.Background()); err != nil || head != 0 {
				t.Fatalf("%s: not empty: %d %v", e.Engine, head, err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if e.Engine == servicedbtest.Postgres {
				u, _ := url.Parse(e.URL)
				pgSchema = u.Query().Get("search_path")
			}
		}
	})
	if pgSchema == "" {
		t.Skip("PostgreSQL not available")
	}
	db, err := sql.Open("pgx", servicedbtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", pgSchema).Scan(&n)
	if err != nil || n != 0 {
		t.Fatalf("schema %s still exists after the test (%d, %v)", pgSchema, n, err)
	}
}
