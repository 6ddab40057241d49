// Package wire defines the internal API between the web tier (apiclient) and
// the services tier: header names and JSON bodies. Storage keys and file
// names travel in headers or JSON bodies, percent-encoded, never in URLs, so
// that no PHI appears in the URLs of the internal hop (invariant 7).
package wire

import (
	"net/url"
	"time"

	"depot"
)

// Paths of the internal API. Upload session IDs are random and carry no PHI.
const (
	PathPrefix   = "/internal/v1/"
	PathObject   = "/internal/v1/object"  // PUT, GET, HEAD, DELETE; key in HeaderKey
	PathObjects  = "/internal/v1/objects" // GET: list; prefix in HeaderPrefix
	PathUploads  = "/internal/v1/uploads" // POST: create session
	PathAuth     = "/internal/v1/auth"    // POST: authenticate a user token
	PathCleanup  = "/internal/v1/cleanup" // POST: request a cleanup run
	PathHealth   = "/healthz"
	PathReady    = "/readyz"
	UploadPrefix = "/internal/v1/uploads/" // + {id}, + {id}/complete
)

// Header names of the internal API. Every Depot-* header of a request is
// bound into its signature (internal/httpauth), whether listed here or not.
const (
	HeaderUserToken   = "Depot-User-Token"   // the end user's bearer token, forwarded
	HeaderTrustedUser = "Depot-Trusted-User" // a user vouched for by web's trusted SSO proxy
	HeaderKey         = "Depot-Key"          // percent-encoded storage key
	HeaderPrefix      = "Depot-Prefix"       // percent-encoded listing prefix
	HeaderAfter       = "Depot-After"        // percent-encoded listing cursor
	HeaderFileName    = "Depot-File-Name"    // percent-encoded original file name
	HeaderSize        = "Depot-Size"         // declared size in bytes
	HeaderSHA256      = "Depot-Sha256"       // lowercase hex SHA-256
	HeaderClass       = "Depot-Class"        // permanent | temporary
	HeaderOffset      = "Depot-Offset"       // append offset / current offset
	HeaderModified    = "Depot-Modified"     // RFC 3339 modification time
	HeaderRequestID   = "Depot-Request-Id"   // correlation ID from web to services
	HeaderWebNode     = "Depot-Web-Node"     // name of the web process
	HeaderClientIP    = "Depot-Client-Ip"    // the end user's address as web saw it
	HeaderUserAgent   = "Depot-User-Agent"   // the end user's User-Agent
	HeaderResume      = "Depot-Resume"       // "1" on the first chunk of a resumed client request
	HeaderPermission  = "Depot-Permission"   // a permission the caller must still hold on an upload's cohort
	HeaderCohort      = "Depot-Cohort"       // percent-encoded cohort of an authorisation request (never in the URL)
	// HeaderCRC32C is the CRC-32C (Castagnoli, 8 lowercase hex digits) of
	// an append's body as the sender computed it: services counts the
	// bytes only if they match.
	HeaderCRC32C = "Depot-Crc32c"
	// HeaderKeyRejected is set by services on its 401 to a request whose
	// internal signature it refused (not a user's credentials).
	HeaderKeyRejected = "Depot-Key-Rejected"
	// HeaderTransient marks an error answer caused by the request being
	// damaged in transit (e.g. its body cut short): worth a retry.
	HeaderTransient = "Depot-Transient"
)

// EncodeKey percent-encodes a key or file name for a header.
func EncodeKey(s string) string { return url.PathEscape(s) }

// DecodeKey reverses EncodeKey.
func DecodeKey(s string) (string, error) { return url.PathUnescape(s) }

// CreateUpload is the body of POST /internal/v1/uploads.
type CreateUpload struct {
	Key      string            `json:"key"`
	Size     int64             `json:"size"` // -1 unknown
	SHA256   string            `json:"sha256,omitempty"`
	Class    depot.Class       `json:"class,omitempty"`
	FileName string            `json:"file_name,omitempty"`
	Meta     map[string]string `json:"metadata,omitempty"`
}

// CompleteUpload is the body of POST /internal/v1/uploads/{id}/complete.
type CompleteUpload struct {
	Size   int64  `json:"size"` // -1: do not check
	SHA256 string `json:"sha256,omitempty"`
}

// ObjectJSON is an object as the internal API returns it.
type ObjectJSON = depot.Object

// ParseTime parses HeaderModified.
func ParseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
