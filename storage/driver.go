// Package storage is depot's portable storage layer: a Store that enforces the
// key policy, computes SHA-256 while streaming, keeps resumable upload
// sessions and publishes objects atomically, over a small Driver interface
// that each backend (local disk, memory, S3) implements. Every driver passes
// the same conformance suite in storage/storagetest.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is returned (possibly wrapped) by drivers for a missing object,
// staging area or session record.
var ErrNotExist = errors.New("storage: does not exist")

// ErrUnsupported is returned (possibly wrapped) by a driver for an operation
// its backend cannot perform, for example ReadStaging of bytes that the S3
// driver has already uploaded as multipart parts, which S3 cannot read back.
var ErrUnsupported = errors.New("storage: not supported by this driver")

// ObjectInfo is what a driver knows about a committed object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
	Attrs   Attrs
}

// Attrs are the attributes recorded with an object at commit time.
type Attrs struct {
	SHA256 string `json:"sha256,omitempty"` // lowercase hex of the whole object
	Class  string `json:"class,omitempty"`  // "permanent" or "temporary"
}

// Staging identifies the staging area of one upload session. State is opaque
// driver data (for example an S3 multipart upload ID and its parts); the Store
// persists it in the session record after every successful call that may
// change it, and hands it back on the next call, also after a restart.
type Staging struct {
	ID    string // random session ID: [0-9a-f]{32}
	Key   string // the target key, already validated
	State []byte
}

// Driver is implemented by each storage backend. The Store serialises calls
// for one session ID; calls for different sessions and objects may run
// concurrently. Keys and prefixes are validated by the Store before they
// reach a driver. Drivers must never make partial data visible under a key:
// staging data and session records are invisible to Stat, Open and List.
type Driver interface {
	// CreateStaging prepares an empty staging area for st (for the local
	// driver a temporary file beside the target).
	CreateStaging(ctx context.Context, st *Staging) error
	// WriteStaging discards any staged bytes at or past offset, then copies r
	// to the staging area at offset until r returns io.EOF, and makes those
	// bytes durable before returning. It returns the number of bytes taken
	// from r. If it returns an error, the bytes past offset are undefined and
	// the Store will retry from offset.
	WriteStaging(ctx context.Context, st *Staging, offset int64, r io.Reader) (int64, error)
	// ReadStaging reads staged bytes [offset, offset+length).
	ReadStaging(ctx context.Context, st *Staging, offset, length int64) (io.ReadCloser, error)
	// Commit atomically publishes exactly the first size staged bytes under
	// st.Key with attrs, replacing any existing object, and releases the
	// staging area. After Commit returns nil the object is durable.
	Commit(ctx context.Context, st *Staging, size int64, attrs Attrs) error
	// DiscardStaging releases the staging area; missing is not an error.
	DiscardStaging(ctx context.Context, st *Staging) error

	// PutSession atomically replaces the session record id. A new record is
	// durable when PutSession returns; a replacement may, after a power
	// failure, revert to the record it replaced: an earlier consistent state,
	// since staged bytes past a record's offset are ignored.
	PutSession(ctx context.Context, id string, record []byte) error
	// GetSession returns the session record id, or ErrNotExist.
	GetSession(ctx context.Context, id string) ([]byte, error)
	// DeleteSession removes the session record; missing is not an error.
	DeleteSession(ctx context.Context, id string) error
	// ListSessions returns the IDs of every session record.
	ListSessions(ctx context.Context) ([]string, error)

	// Open reads [offset, offset+length) of an object; length -1 means to the
	// end. A missing object is ErrNotExist.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat describes an object, or returns ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes an object; a missing object is ErrNotExist.
	Delete(ctx context.Context, key string) error
	// List returns up to limit objects whose keys start with prefix and sort
	// strictly after after, in byte order of their keys.
	List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error)

	// Strays lists leftovers that belong to no session record and no object:
	// staging or temporary data left by a crash. Each Stray can be removed
	// with RemoveStray.
	Strays(ctx context.Context) ([]Stray, error)
	// RemoveStray removes one leftover; missing is not an error.
	RemoveStray(ctx context.Context, s Stray) error

	// Close releases the driver's resources.
	Close() error
}

// Stray is a leftover found by Driver.Strays. Name identifies it for the
// driver and is never shown to clients (it may contain a file name).
type Stray struct {
	Name    string
	Size    int64
	ModTime time.Time
	// SessionID is the session the leftover claims to belong to, if known.
	SessionID string
}

// AtomicPutter is an optional driver capability: storing a whole object in
// one call without an upload session. The driver streams r to a temporary
// location, then calls finish with the byte count; finish returns the
// attributes to record, or an error to abandon the write (nothing becomes
// visible). Only after finish succeeds is the object made durable and
// published atomically.
type AtomicPutter interface {
	PutAtomic(ctx context.Context, key string, r io.Reader, finish func(n int64) (Attrs, error)) (int64, error)
}
