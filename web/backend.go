package web

import (
	"context"
	"encoding/json"
	"io"

	"depot"
	"depot/internal/wire"
)

// Backend is what the web tier needs from the services tier (apiclient
// implements it over the internal API). Every call carries the caller it
// is made for; services authenticates, authorises and audits each one.
type Backend interface {
	Files
	Uploads
	Admin
}

// Files are the operations on stored files.
type Files interface {
	// Authorize returns the caller's principal and, when cohort is not "",
	// checks perm in it (before any body byte is read).
	Authorize(ctx context.Context, c depot.Caller, cohort string, perm depot.Permission) (depot.Principal, error)
	// Put stores body as a new version of key and returns it. Nothing is
	// visible unless Put returns nil.
	Put(ctx context.Context, c depot.Caller, key string, body io.Reader, opts depot.PutOptions, fileName string) (depot.Object, error)
	// Open reads a version of key as opts select.
	Open(ctx context.Context, c depot.Caller, key string, opts depot.ReadOptions) (depot.Download, error)
	// Stat describes a version of key ("" the current one).
	Stat(ctx context.Context, c depot.Caller, key, version string) (depot.Object, error)
	List(ctx context.Context, c depot.Caller, prefix, after string, limit int) (depot.ListPage, error)
	History(ctx context.Context, c depot.Caller, key string) (depot.History, error)
	// Delete hides key behind a delete marker.
	Delete(ctx context.Context, c depot.Caller, key string) error
	// Purge removes version ("" every version) of key for good.
	Purge(ctx context.Context, c depot.Caller, key, version string) error
	Undelete(ctx context.Context, c depot.Caller, key string) (depot.Object, error)
	RestoreVersion(ctx context.Context, c depot.Caller, key, version string) (depot.Object, error)
}

// Uploads are the operations on resumable upload sessions (tus).
type Uploads interface {
	CreateUpload(ctx context.Context, c depot.Caller, req wire.CreateUpload) (depot.Upload, error)
	// Upload returns an upload's state; resume records that its client
	// came back to it.
	Upload(ctx context.Context, c depot.Caller, id string, resume bool) (depot.Upload, error)
	// AppendStream appends r at offset and returns the bytes appended;
	// with complete it commits the upload when it reaches end (its total
	// size, -1 unknown: the end of r), returning the version.
	AppendStream(ctx context.Context, c depot.Caller, id string, offset int64, r io.Reader, end int64, complete bool) (int64, *depot.Object, error)
	// AppendChunk appends data held in memory by the caller (a verified
	// checksummed tus body, in a buffer from ChunkBuffer) at offset in one
	// request, taking no second buffer from the pool; end and complete as
	// for AppendStream.
	AppendChunk(ctx context.Context, c depot.Caller, id string, offset int64, data []byte, end int64, complete bool) (int64, *depot.Object, error)
	// ChunkBuffer lends a buffer of the backend's chunk size from its
	// bounded pool (the one chunks of AppendStream and Put come from),
	// waiting while all are in use; release gives it back.
	ChunkBuffer(ctx context.Context) (buf []byte, release func(), err error)
	Complete(ctx context.Context, c depot.Caller, id string, size int64, sha256 string) (depot.Object, error)
	// Concat creates the final upload of the tus concatenation extension
	// from complete partial uploads, and commits it as a new version.
	Concat(ctx context.Context, c depot.Caller, req wire.ConcatUpload) (depot.Upload, depot.Object, error)
	// Abort discards an upload; reason is why web gives up on it ("": its
	// client ended it).
	Abort(ctx context.Context, c depot.Caller, id string, reason depot.Code) error
}

// Admin are the operations of managers and administrators.
type Admin interface {
	Holds(ctx context.Context, c depot.Caller, cohort string) ([]wire.Hold, error)
	PlaceHold(ctx context.Context, c depot.Caller, h wire.PlaceHold) (wire.Hold, error)
	ReleaseHold(ctx context.Context, c depot.Caller, cohort string, id int64) error
	RequestCleanup(ctx context.Context, c depot.Caller, dryRun bool) (json.RawMessage, error)
	// Ready reports whether services answers (for /readyz).
	Ready(ctx context.Context) error
}
