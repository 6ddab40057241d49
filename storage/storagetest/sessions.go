package storagetest

import (
	"context"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/storage"
)

// Sessions is an in-memory storage.Sessions, for the tests of drivers and
// of the Store. Its LockSession does nothing (one process).
type Sessions struct {
	mu       sync.Mutex
	sessions map[string]storage.Session
}

var _ storage.Sessions = (*Sessions)(nil)

// NewSessions returns an empty Sessions.
func NewSessions() *Sessions { return &Sessions{sessions: map[string]storage.Session{}} }

func (m *Sessions) CreateSession(_ context.Context, s storage.Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.ID]; ok {
		return depot.Errorf(depot.CodeConflict, "session exists")
	}
	s.Meta = maps.Clone(s.Meta)
	m.sessions[s.ID] = s
	return nil
}

func (m *Sessions) Session(_ context.Context, id string) (storage.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return storage.Session{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	s.Meta = maps.Clone(s.Meta)
	return s, nil
}

func (m *Sessions) SaveProgress(_ context.Context, id string, p storage.Progress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	s.Offset, s.HashState, s.DriverState, s.Last, s.Updated, s.Lazy = p.Offset, p.HashState, p.DriverState, p.Last, p.Updated, p.Lazy
	m.sessions[id] = s
	return nil
}

func (m *Sessions) DeleteSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

func (m *Sessions) LockSession(context.Context, string) (func(), error) { return func() {}, nil }

// Len returns the number of sessions.
func (m *Sessions) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// RunSessionsTests is the conformance suite of storage.Sessions
// implementations; newSessions returns an empty one.
func RunSessionsTests(t *testing.T, newSessions func(t *testing.T) storage.Sessions) {
	t.Run("RoundTrip", func(t *testing.T) {
		ss := newSessions(t)
		ctx := t.Context()
		created := time.Now().UTC().Truncate(time.Millisecond)
		want := storage.Session{Upload: depot.Upload{
			ID: storage.NewID(), Key: "c1/dir/file.csv", Owner: "alice", DeclaredSize: 1234,
			SHA256: "ab" + storage.NewID() + storage.NewID()[2:], Class: depot.Temporary,
			Created: created, Updated: created, Resumable: true,
			Meta: map[string]string{"file_name": "file.csv", "protocol": "tus"},
		}, DriverState: []byte(`{"upload_id":"x"}`)}
		if err := ss.CreateSession(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := ss.Session(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Session = %+v\nwant %+v", got, want)
		}
		p := storage.Progress{Offset: 1000, HashState: []byte("hash"), DriverState: []byte("drv"),
			Last: storage.ChunkMark{Offset: 0, Length: 1000, CRC32C: 0xdeadbeef}, Updated: created.Add(time.Second)}
		if err := ss.SaveProgress(ctx, want.ID, p); err != nil {
			t.Fatal(err)
		}
		want.Offset, want.HashState, want.DriverState, want.Last, want.Updated = p.Offset, p.HashState, p.DriverState, p.Last, p.Updated
		if got, err = ss.Session(ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Session after SaveProgress = %+v, %v\nwant %+v", got, err, want)
		}
		// A lazy save (more chunks of the same request follow) reads back
		// marked lazy.
		p = storage.Progress{Offset: 2000, HashState: []byte("hash2"), Last: storage.ChunkMark{Offset: 1000, Length: 1000, CRC32C: 7},
			Updated: created.Add(2 * time.Second), Lazy: true}
		if err := ss.SaveProgress(ctx, want.ID, p); err != nil {
			t.Fatal(err)
		}
		want.Offset, want.HashState, want.DriverState, want.Last, want.Updated, want.Lazy = p.Offset, p.HashState, p.DriverState, p.Last, p.Updated, true
		if got, err = ss.Session(ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Session after a lazy SaveProgress = %+v, %v\nwant %+v", got, err, want)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		ss := newSessions(t)
		ctx := t.Context()
		id := storage.NewID()
		if _, err := ss.Session(ctx, id); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("Session of a missing ID: %v, want not_found", err)
		}
		if err := ss.SaveProgress(ctx, id, storage.Progress{Offset: 1}); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("SaveProgress of a missing ID: %v, want not_found", err)
		}
		if err := ss.DeleteSession(ctx, id); err != nil {
			t.Errorf("DeleteSession of a missing ID: %v", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		ss := newSessions(t)
		ctx := t.Context()
		s := storage.Session{Upload: depot.Upload{ID: storage.NewID(), Key: "c1/x", Owner: "bob", DeclaredSize: -1,
			Class: depot.Permanent, Created: time.Now().UTC(), Updated: time.Now().UTC()}}
		if err := ss.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := ss.CreateSession(ctx, s); err == nil {
			t.Error("CreateSession of an existing ID succeeded")
		}
		if err := ss.DeleteSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Session(ctx, s.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("Session after delete: %v, want not_found", err)
		}
	})
	t.Run("Lock", func(t *testing.T) {
		ss := newSessions(t)
		id := storage.NewID()
		for range 3 {
			unlock, err := ss.LockSession(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			unlock()
		}
	})
}
