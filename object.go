package depot

import (
	"io"
	"time"
)

// Class says how long a file version is meant to live. It is declared when
// the version is uploaded and never inferred later.
type Class string

// File classes.
const (
	Permanent Class = "permanent"
	Temporary Class = "temporary"
)

// Valid reports whether c is a known class.
func (c Class) Valid() bool { return c == Permanent || c == Temporary }

// Object describes one committed version of a file: its path, the version
// and its bytes. Versions are immutable: a Version ID always names the same
// bytes, and its SHA-256 is the file's HTTP entity tag.
type Object struct {
	Key        string    `json:"path"`
	Version    string    `json:"version"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"` // lowercase hex
	ModTime    time.Time `json:"modified"`
	Class      Class     `json:"class,omitempty"`
	UploadedBy string    `json:"uploaded_by,omitempty"`
	// CleanupScheduledFor is when a temporary version is due for cleanup.
	CleanupScheduledFor *time.Time `json:"cleanup_scheduled_for,omitempty"`
	// Scan is the malware scan status of the version: "" when scanning
	// was off at its upload.
	Scan ScanStatus `json:"scan,omitempty"`
}

// ScanStatus is what the malware scanner said of a version.
type ScanStatus string

// Scan statuses. A version is committed only clean, or unscanned under an
// explicit fail-open (or oversize) policy; a rescan of an unscanned
// version may find it infected, after which it is no longer served.
const (
	ScanClean     ScanStatus = "clean"
	ScanUnscanned ScanStatus = "unscanned"
	ScanInfected  ScanStatus = "infected"
)

// VersionInfo is one version of a path in its history (GET …?versions).
type VersionInfo struct {
	Object
	// Current is set on the version the path shows now (also while the
	// path is deleted: that is the version an undelete brings back).
	Current bool `json:"current"`
}

// History is a path's versions, newest first, and whether the path is
// deleted (hidden behind a delete marker).
type History struct {
	Key      string        `json:"path"`
	Deleted  *time.Time    `json:"deleted,omitempty"`
	Versions []VersionInfo `json:"versions"`
}

// ListPage is one page of a listing, in key order. Next is the cursor for the
// following page, or "" at the end.
type ListPage struct {
	Objects []Object `json:"files"`
	Next    string   `json:"next,omitempty"`
}

// Upload describes an upload session: bytes are appended at explicit offsets
// and become a new version of Key only when the session is completed. The
// version's ID is the session's ID.
type Upload struct {
	ID           string    `json:"id"`
	Key          string    `json:"path"`
	Owner        string    `json:"owner"`
	Offset       int64     `json:"offset"`
	DeclaredSize int64     `json:"declared_size"` // -1 when unknown
	SHA256       string    `json:"declared_sha256,omitempty"`
	Class        Class     `json:"class,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	Expires      time.Time `json:"expires"`
	// Resumable sessions (tus, the CLI) wait for their client for the
	// upload expiry; a plain PUT's session cannot be continued by anyone
	// once its request ends, and is removed as soon as it is idle.
	Resumable bool `json:"resumable"`
	// Meta is free-form session metadata set at creation (file name,
	// protocol). It may hold PHI and is never logged.
	Meta map[string]string `json:"metadata,omitempty"`
	// Completed is set once the upload was committed as version ID.
	Completed bool `json:"completed,omitempty"`
}

// PutOptions describe an upload.
type PutOptions struct {
	Size   int64  // declared size; -1 when unknown
	SHA256 string // declared lowercase hex SHA-256; "" when unknown
	Class  Class  // "" means Permanent
	// IfMatch, when set, commits the upload only if the path's current
	// version has this entity tag (its SHA-256) or, for "*", if the path
	// has a current version (optimistic concurrency).
	IfMatch string
	// IfNoneMatch "*" commits the upload only if the path has no current
	// version (create-only).
	IfNoneMatch string
}

// Range selects bytes [Offset, Offset+Length) of an object; Length -1 means
// to the end. A suffix range (bytes=-N) has Suffix N > 0 and is resolved
// against the object's size.
type Range struct {
	Offset int64
	Length int64
	Suffix int64
}

// Resolve returns the range as an offset and a length within an object of
// size bytes, and false when it is not satisfiable (it starts past the end).
func (r Range) Resolve(size int64) (offset, length int64, ok bool) {
	if r.Suffix > 0 {
		n := min(r.Suffix, size)
		if size == 0 {
			return 0, 0, false
		}
		return size - n, n, true
	}
	if r.Offset < 0 || r.Offset >= size {
		return 0, 0, false
	}
	length = size - r.Offset
	if r.Length >= 0 && r.Length < length {
		length = r.Length
	}
	return r.Offset, length, true
}

// ReadOptions select what a download returns.
type ReadOptions struct {
	// Version names the version to read; "" is the current one.
	Version string
	// Range selects part of it; nil is the whole version.
	Range *Range
	// IfRange is an If-Range validator (an entity tag or an HTTP date):
	// when it does not match the version, Range is ignored and the whole
	// version is returned, so that a resumed download never mixes two
	// versions.
	IfRange string
	// IfNoneMatch is an If-None-Match header: when it matches the
	// version, nothing is read and the answer is CodeNotModified.
	IfNoneMatch string
}

// Download is an open read of one version: what it is, which bytes of it
// Body returns, and how to answer. NotModified (If-None-Match matched)
// comes without a Body.
type Download struct {
	Object      Object
	Offset      int64
	Length      int64
	Partial     bool // Offset and Length select a range (206)
	NotModified bool
	Body        io.ReadCloser
}

// ValidVersionID reports whether id has the form of a version (and upload)
// ID: 128 bits in lower-case hex.
func ValidVersionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
