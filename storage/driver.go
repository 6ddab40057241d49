// Package storage is depot's portable storage layer. A Store turns upload
// sessions into immutable objects: it checks offsets, hashes while
// streaming and verifies every chunk against its CRC-32C, over a small
// Driver interface that each backend (local disk, memory, S3) implements
// and a Sessions interface that persists upload sessions (the services
// database). Every driver passes the same conformance suite in
// storage/storagetest.
//
// Objects are named by random IDs, never by file paths: which object a path
// shows is a pointer in the database, changed in the same transaction as
// the audit record (see services). An object is written once, before that
// transaction, and removed only after a transaction stopped referring to
// it, so a crash at any point leaves objects that nothing references,
// which cleanup removes, and never a referenced object that is missing or
// changed.
package storage

import (
	"context"
	"errors"
	"hash"
	"io"
	"time"
)

// ErrNotExist is returned (possibly wrapped) by drivers for a missing object
// or staging area.
var ErrNotExist = errors.New("storage: does not exist")

// ErrRewrite is returned (wrapped) by a driver that refuses to store other
// bytes at an offset where it stored bytes before (storage/sealed: that
// would reuse a nonce). The Store answers CodeConflict: the client must
// start a new upload.
var ErrRewrite = errors.New("storage: the bytes differ from an earlier attempt at the same offset")

// ErrStagingLost is returned (wrapped) by a driver whose staging area may
// have lost bytes it accepted without making them durable (Staging.Lazy):
// the machine that held them stopped before they reached the disk. The
// Store answers CodeNotFound: the client must start a new upload.
var ErrStagingLost = errors.New("storage: staged bytes not yet on disk were lost when the machine stopped")

// ErrNoSpace is returned (possibly wrapped) by drivers when the backend has
// no room left for the bytes being written.
var ErrNoSpace = errors.New("storage: no space left")

// ObjectInfo is what a driver knows about a stored object.
type ObjectInfo struct {
	ID      string
	Size    int64
	ModTime time.Time
}

// Staging identifies the staging area of one upload: the bytes that become
// the object ID when published. State is opaque driver data (for example an
// S3 multipart upload ID and its parts); the Store persists it with the
// session after every successful call that may change it, and hands it back
// on the next call, also after a restart.
type Staging struct {
	ID    string // random ID, [0-9a-f]{32}: also the ID of the object it becomes
	State []byte

	// Lazy, set by Store.Append for a chunk that more chunks of the same
	// request follow, lets WriteStaging return before the bytes are
	// durable: the next WriteStaging without Lazy, or Publish, makes every
	// staged byte durable. A driver that keeps such bytes somewhere a
	// crash of the machine loses them (the page cache) records in State
	// what lets it tell later, and then fails every call on the staging
	// area but DiscardStaging with ErrStagingLost. A driver may ignore it.
	Lazy bool

	// Verify, when set (Store.Append), reports whether every byte of the
	// current WriteStaging's reader arrived intact (its length and
	// CRC-32C); it is meaningful once the reader returned io.EOF. A driver
	// that transforms bytes irreversibly (storage/sealed encrypts) calls
	// it before it commits to them. Nil means nothing to check.
	Verify func() error
	// Checkpoint, when set (Store.Append, Store.Complete), persists state
	// as the session's driver state now, in the middle of a call, with the
	// session's offset unchanged: a driver records there what it must
	// remember even if the call then fails or the process dies (sealed:
	// the authentication tags of segments it is about to write, so that a
	// retry never encrypts different bytes under the same nonce). Nil for
	// staging areas that are never written again after a failure (Put,
	// Restore).
	Checkpoint func(ctx context.Context, state []byte) error
	// TakeHash, when set (Store.Append), hands the upload's running
	// SHA-256 over to the driver; otherwise the Store feeds it every byte
	// of the current WriteStaging's reader as the driver reads it. A driver
	// that holds a chunk's bytes in memory anyway (sealed) may so hash
	// them while it writes rather than while they arrive. It is called
	// before the first Read, or returns nil; the driver then writes every
	// byte it read into the hash, in order, before WriteStaging returns
	// without error.
	TakeHash func() hash.Hash
}

// Driver is implemented by each storage backend. The Store serialises calls
// for one staging ID; calls for different IDs may run concurrently. IDs are
// validated by the Store before they reach a driver. Objects are immutable:
// once published, an object's bytes never change until it is deleted.
type Driver interface {
	// CreateStaging prepares an empty staging area for st.
	CreateStaging(ctx context.Context, st *Staging) error
	// WriteStaging discards any staged bytes at or past offset, then copies
	// r to the staging area at offset until r returns io.EOF, and makes
	// those bytes durable before returning, unless st.Lazy says they need
	// not be yet. It returns the number of bytes
	// taken from r. If it returns an error (also one of r), the bytes past
	// offset are undefined and the next write starts at offset again. An
	// offset past the staged bytes is an error. A full backend is
	// ErrNoSpace.
	WriteStaging(ctx context.Context, st *Staging, offset int64, r io.Reader) (int64, error)
	// DiscardStaging releases the staging area; missing is not an error.
	DiscardStaging(ctx context.Context, st *Staging) error
	// Publish makes exactly the first size staged bytes durable as the
	// immutable object st.ID and releases the staging area. When the
	// object st.ID exists already and the staging area does not (an
	// earlier Publish that succeeded, then a crash), Publish returns nil
	// and changes nothing; when both exist (a staging area created anew
	// for the ID: depot keys rotate), it replaces the object atomically. Without a staging
	// area or object it returns ErrNotExist; a size larger than the staged
	// bytes is an error.
	Publish(ctx context.Context, st *Staging, size int64) error

	// Open reads [offset, offset+length) of object id; length -1 means to
	// the end. A range running past the end is clamped. A missing object
	// is ErrNotExist.
	Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error)
	// Stat describes object id, or returns ErrNotExist.
	Stat(ctx context.Context, id string) (ObjectInfo, error)
	// Delete removes object id; a missing object is not an error.
	Delete(ctx context.Context, id string) error
	// List returns up to limit objects whose IDs sort strictly after after,
	// in ID order.
	List(ctx context.Context, after string, limit int) ([]ObjectInfo, error)

	// Strays lists staging areas and the driver's own leftovers (a crash
	// between two steps of a write). A Stray with a SessionID is the
	// staging area of that ID; the Store decides whether a session still
	// owns it. Each Stray can be removed with RemoveStray.
	Strays(ctx context.Context) ([]Stray, error)
	// RemoveStray removes one leftover; missing is not an error.
	RemoveStray(ctx context.Context, s Stray) error

	// Close releases the driver's resources.
	Close() error
}

// Stray is a leftover found by Driver.Strays. Name identifies it for the
// driver; it holds no file name (objects and staging areas are named by
// IDs), but is still kept out of logs.
type Stray struct {
	Name    string
	Size    int64
	ModTime time.Time
	// SessionID is the staging ID the leftover belongs to, if any.
	SessionID string
}

// ObjectPutter is an optional driver capability: storing a small object
// (at most a few MiB, size known) in one call instead of a staging area,
// for backends where a staging area costs several requests (S3). The
// object must not be visible as published if PutObject fails. Reading r
// fully is the caller's verification: PutObject must fail when r does.
type ObjectPutter interface {
	PutObject(ctx context.Context, id string, r io.Reader, size int64) error
}

// Space is the capacity of a backend, when it has one.
type Space struct {
	Free  int64 // bytes available to depot
	Total int64
}

// SpaceReporter is an optional driver capability: the free and total bytes
// of the volume (local disk). S3 has none.
type SpaceReporter interface {
	Space(ctx context.Context) (Space, error)
}
