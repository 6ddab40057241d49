package cli

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/metrics"
	"depot/services"
	"depot/storage"
)

// fixtureKey is the internal key of servicesFixture's services handler.
var fixtureKey = httpauth.NewKey()

// servicesFixture is the production services handler on what a services
// process runs on: local storage and a SQLite database in a temporary
// directory, user "ana" holding a role in cohort "c", and a token of ana's.
type servicesFixture struct {
	store   *storage.Store
	handler http.Handler
	token   string
}

func newServicesFixture(t *testing.T, role depot.Role) servicesFixture {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	store, err := openStore(ctx, "file://"+filepath.Join(dir, "files"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Driver().Close() })
	db, err := openDatabase(ctx, "sqlite://"+filepath.Join(dir, "depot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateUser(ctx, "ana", false); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCohort(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := db.Grant(ctx, "ana", "c", role); err != nil {
		t.Fatal(err)
	}
	token, _, err := db.CreateToken(ctx, "ana", "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := services.New(services.Config{Store: store, DB: servicesDB{db}, Keys: []string{fixtureKey}, Metrics: metrics.New("services")})
	return servicesFixture{store: store, handler: srv.Handler(), token: token}
}
