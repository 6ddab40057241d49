package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"time"

	"depot"
)

// Sessions persists upload sessions. The services database implements it
// (servicedb.DB); storagetest has an in-memory one for driver tests. Every
// method fails with a *depot.Error: CodeNotFound for a missing session.
type Sessions interface {
	// CreateSession stores a new session.
	CreateSession(ctx context.Context, s Session) error
	// Session returns session id.
	Session(ctx context.Context, id string) (Session, error)
	// SaveProgress records a chunk that became durable: the new offset,
	// hash and driver state. It fails with CodeNotFound when the session
	// is gone.
	SaveProgress(ctx context.Context, id string, p Progress) error
	// DeleteSession removes session id; missing is not an error.
	DeleteSession(ctx context.Context, id string) error
	// LockSession takes a lock on session id shared by every process that
	// uses the same sessions (services instances sharing a PostgreSQL
	// database), or does nothing where only one process can use them.
	LockSession(ctx context.Context, id string) (unlock func(), err error)
}

// Session is the durable state of one upload session. Upload.Expires is
// not stored: the Store computes it from Updated and its configuration.
type Session struct {
	depot.Upload
	HashState   []byte    // marshalled SHA-256 state at Upload.Offset
	DriverState []byte    // Staging.State
	Last        ChunkMark // the last chunk appended, to recognise its retry
	Lazy        bool      // the last chunk appended is not durable yet (Progress.Lazy)
}

// ChunkMark identifies an appended chunk by its place and checksum.
type ChunkMark struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	CRC32C uint32 `json:"crc32c"`
}

// Progress is what SaveProgress records. A Lazy one (a chunk written with
// Staging.Lazy) need not be durable when SaveProgress returns: after a crash
// of the machine the session may be found at an earlier progress, or at
// this one with the driver reporting its bytes lost.
type Progress struct {
	Lazy bool
	// Durable saves a Lazy progress durably all the same: a checkpoint
	// that must reach the disk before the bytes it announces.
	Durable     bool
	Offset      int64
	HashState   []byte
	DriverState []byte
	Last        ChunkMark
	Updated     time.Time
}

func (s *Session) staging() *Staging { return &Staging{ID: s.ID, State: s.DriverState} }

// StateSealer is an optional driver capability (storage/sealed): a
// session's marshalled SHA-256 state holds the last 0 to 63 bytes of the
// upload in plaintext (the hash's pending block), so a driver that
// encrypts what it stores seals that state too before the Store persists
// it in the database, and opens it when the Store reads it back.
type StateSealer interface {
	SealState(state []byte) ([]byte, error)
	OpenState(sealed []byte) ([]byte, error)
}

// hasher returns session sess's running SHA-256, restored at its offset.
func (s *Store) hasher(sess Session) (hash.Hash, error) {
	h := sha256.New()
	state := sess.HashState
	if ss, ok := s.d.(StateSealer); ok && len(state) > 0 {
		var err error
		if state, err = ss.OpenState(state); err != nil {
			return nil, fmt.Errorf("open hash state of session %s: %w", sess.ID, err)
		}
	}
	if len(state) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
			return nil, fmt.Errorf("restore hash state of session %s: %w", sess.ID, err)
		}
	}
	return h, nil
}

// marshalHash returns the state of h to persist (sealed, see StateSealer).
func (s *Store) marshalHash(h hash.Hash) ([]byte, error) {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("save hash state: %w", err)
	}
	if ss, ok := s.d.(StateSealer); ok {
		if state, err = ss.SealState(state); err != nil {
			return nil, fmt.Errorf("seal hash state: %w", err)
		}
	}
	return state, nil
}

// NewID returns 128 random bits in hex: the ID of a session and of the
// object (version) it becomes, or of a one-shot upload's object.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go ≥1.24 panics instead)
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form of NewID.
func ValidID(id string) bool { return depot.ValidVersionID(id) }
