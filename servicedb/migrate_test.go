package servicedb_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

func TestMigrateIdempotent(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ctx := context.Background()
		db := openDB(t, e.URL) // first Migrate
		if got := db.Engine(); got != e.Engine {
			t.Fatalf("Engine() = %q, want %q", got, e.Engine)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		other := openDB(t, e.URL) // a second process migrating the same database
		if err := other.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		st, err := db.Migrations(ctx)
		if err != nil {
			t.Fatalf("Migrations: %v", err)
		}
		if len(st) == 0 {
			t.Fatal("no embedded migrations")
		}
		for _, s := range st {
			if !s.Applied {
				t.Errorf("migration %d (%s) not applied", s.Version, s.Name)
			}
		}
		var n int
		q := "SELECT count(*) FROM " + servicedb.MigrationTable + " WHERE version_id > 0"
		if err := db.SQL().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatalf("count migrations: %v", err)
		}
		if n != len(st) {
			t.Fatalf("%d recorded migrations, want %d (each applied once)", n, len(st))
		}
	})
}

// Several processes starting at once must apply each migration once.
func TestMigrateConcurrentPostgres(t *testing.T) {
	t.Parallel()
	url := servicedbtest.PostgresURL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		db, err := servicedb.Open(ctx, url)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		wg.Go(func() { errs <- db.Migrate(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
}

// The audit_actions rows that the migrations of every engine insert are
// exactly depot.Actions, in order (migrations before 00004 listed them in a
// CHECK constraint, which 00004 replaced).
func TestMigrationActionListMatchesDepot(t *testing.T) {
	t.Parallel()
	want := make([]string, len(depot.Actions))
	for i, a := range depot.Actions {
		want[i] = string(a)
	}
	insertRE := regexp.MustCompile(`(?s)INSERT INTO audit_actions \(name\) VALUES(.*?);`)
	itemRE := regexp.MustCompile(`'([^']*)'`)
	for _, engine := range []string{"sqlite", "postgres"} {
		files, err := filepath.Glob(filepath.Join("migrations", engine, "*.sql"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no migrations (%v)", engine, err)
		}
		sort.Strings(files)
		var got []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range insertRE.FindAllStringSubmatch(string(b), -1) {
				for _, it := range itemRE.FindAllStringSubmatch(m[1], -1) {
					got = append(got, it[1])
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: migration action list\n got %s\nwant %s", engine,
				strings.Join(got, ","), strings.Join(want, ","))
		}
	}
}
