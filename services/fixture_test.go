package services

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"depot"
	"depot/internal/httpauth"
	"depot/metrics"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
	"depot/storage"
	"depot/storage/localstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixtureKey is the internal key of a fixture's handler: random, as depot
// refuses keys of low entropy at start.
var fixtureKey = httpauth.NewKey()

// fixture is the production services core and handler on what a services
// process runs on: local storage in a temporary directory and a database
// (SQLite or PostgreSQL), with users of every role in cohort "c":
// "man" (manager), "up" (uploader), "rd" (reader), each with a token.
type fixture struct {
	db      *servicedb.DB
	store   *storage.Store
	core    *Core
	handler http.Handler
	tokens  map[string]string
	dir     string
}

// eachEngine runs fn with a fixture on every database engine.
func eachEngine(t *testing.T, fn func(t *testing.T, fx *fixture)) {
	t.Helper()
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		fn(t, newFixture(t, e.URL))
	})
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	ctx := t.Context()
	db, err := servicedb.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := localstore.Open(filepath.Join(dir, "files"), localstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := storage.New(d, db, storage.Options{})
	t.Cleanup(func() { store.Close() })
	if err := db.CreateCohort(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{db: db, store: store, tokens: map[string]string{}, dir: dir}
	for user, role := range map[string]depot.Role{"man": depot.RoleManager, "up": depot.RoleUploader, "rd": depot.RoleReader} {
		if err := db.CreateUser(ctx, user, false); err != nil {
			t.Fatal(err)
		}
		if err := db.Grant(ctx, user, "c", role); err != nil {
			t.Fatal(err)
		}
		if fx.tokens[user], _, err = db.CreateToken(ctx, user, "test", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New("services")
	fx.core = NewCore(Config{Store: store, DB: db, Metrics: m, TempTTL: time.Hour})
	fx.handler = NewServer(ServerConfig{Core: fx.core, Keys: []string{fixtureKey}, Metrics: m}).Handler()
	return fx
}

// as is the caller with user's token.
func (fx *fixture) as(user string) depot.Caller {
	return depot.Caller{Token: fx.tokens[user], RequestID: "req-" + user, ClientIP: "192.0.2.7"}
}

// put stores body as a new version of key as user, in one shot.
func (fx *fixture) put(ctx context.Context, user, key string, body []byte, class depot.Class) (depot.Object, error) {
	return fx.core.Put(ctx, fx.as(user), PutRequest{Key: key, Class: class, Chunk: chunkOf(0, body)})
}

func chunkOf(off int64, b []byte) storage.Chunk {
	return storage.Chunk{Offset: off, Length: int64(len(b)), CRC32C: storage.CRC32C(b), Body: bytes.NewReader(b)}
}

// read returns the bytes of a version of key ("" the current one) as user.
func (fx *fixture) read(t *testing.T, user, key, version string) []byte {
	t.Helper()
	d, err := fx.core.Open(t.Context(), fx.as(user), key, depot.ReadOptions{Version: version})
	if err != nil {
		t.Fatalf("Open(%s, %q) as %s: %v", key, version, user, err)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(d.Body)
	d.Finish(t.Context(), n, err)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// records returns the audit records of action about key.
func (fx *fixture) records(t *testing.T, action depot.Action, key string) []depot.AuditEvent {
	t.Helper()
	evs, err := fx.db.Events(t.Context(), servicedb.Filter{Action: action, KeyPrefix: key})
	if err != nil {
		t.Fatal(err)
	}
	var out []depot.AuditEvent
	for _, ev := range evs {
		if ev.Key == key {
			out = append(out, ev)
		}
	}
	return out
}
