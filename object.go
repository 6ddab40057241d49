package depot

import (
	"context"
	"io"
	"time"
)

// Class says how long a file is meant to live. It is declared when the file is
// created and never inferred later.
type Class string

// File classes.
const (
	Permanent Class = "permanent"
	Temporary Class = "temporary"
)

// Valid reports whether c is a known class.
func (c Class) Valid() bool { return c == Permanent || c == Temporary }

// Object describes a committed file.
type Object struct {
	Key     string    `json:"path"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"` // lowercase hex
	ModTime time.Time `json:"modified"`
	Class   Class     `json:"class,omitempty"`
}

// ListPage is one page of a listing, in key order. Next is the cursor for the
// following page, or "" at the end.
type ListPage struct {
	Objects []Object `json:"files"`
	Next    string   `json:"next,omitempty"`
}

// Upload describes an upload session: bytes are appended at explicit offsets
// and become a visible object only when the session is completed.
type Upload struct {
	ID           string    `json:"id"`
	Key          string    `json:"path"`
	Offset       int64     `json:"offset"`
	DeclaredSize int64     `json:"declared_size"` // -1 when unknown
	SHA256       string    `json:"declared_sha256,omitempty"`
	Class        Class     `json:"class,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	Expires      time.Time `json:"expires"`
	// Meta is free-form session metadata set at creation (cohort, file
	// name, owner). It may hold PHI and is never logged.
	Meta map[string]string `json:"metadata,omitempty"`
	// Completed is set once the upload was committed; the session is kept
	// until it expires so that a client that lost the final answer can ask
	// again and learn that its upload is complete.
	Completed bool `json:"completed,omitempty"`
}

// PutOptions describe an upload.
type PutOptions struct {
	Size   int64  // declared size; -1 when unknown
	SHA256 string // declared lowercase hex SHA-256; "" when unknown
	Class  Class  // "" means Permanent
	// ContentType is informational; depot stores bytes as given.
	ContentType string
}

// Range selects bytes [Offset, Offset+Length) of an object; Length -1 means to
// the end.
type Range struct {
	Offset int64
	Length int64
}

// Files is what the web tier needs from the services tier. It is implemented
// by the services core (in-process) and by apiclient (over the internal API).
// Keys follow ValidateKey. Every method is audited by the services tier.
type Files interface {
	// Put streams r into key and returns the committed object. Nothing is
	// visible under key unless Put returns nil.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Object, error)
	// Open returns the object's description and a reader of the selected
	// range. rng nil means the whole object.
	Open(ctx context.Context, key string, rng *Range) (Object, io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Object, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix, after string, limit int) (ListPage, error)
}
