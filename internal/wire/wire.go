// Package wire defines the internal API between the web tier (apiclient) and
// the services tier: paths, header names and JSON bodies. Storage keys,
// cohort and file names travel in headers or JSON bodies, percent-encoded,
// never in URLs, so that no PHI appears in the URLs of the internal hop
// (invariant 7).
package wire

import (
	"net/url"
	"time"

	"depot"
)

// Paths of the internal API. Upload session IDs and hold IDs are random or
// sequential and carry no PHI.
const (
	PathPrefix   = "/internal/v1/"
	PathObject   = "/internal/v1/object"          // PUT (one-shot), GET, HEAD, DELETE (?purge=1); key in HeaderKey
	PathUndelete = "/internal/v1/object/undelete" // POST
	PathRestore  = "/internal/v1/object/restore"  // POST; version in HeaderVersion
	PathVersions = "/internal/v1/versions"        // GET: a path's history
	PathObjects  = "/internal/v1/objects"         // GET: list; prefix in HeaderPrefix
	PathUploads  = "/internal/v1/uploads"         // POST: create session
	PathConcat   = "/internal/v1/concat"          // POST: concatenate partial uploads into a new version
	PathAuth     = "/internal/v1/auth"            // POST: authenticate a user token (cohort and permission in headers)
	PathHolds    = "/internal/v1/holds"           // GET (cohort in HeaderCohort), POST
	PathCleanup  = "/internal/v1/cleanup"         // POST: request a cleanup run
	PathHealth   = "/healthz"
	PathReady    = "/readyz"
	UploadPrefix = "/internal/v1/uploads/" // + {id}, + {id}/complete
	HoldPrefix   = "/internal/v1/holds/"   // + {id}: DELETE releases (cohort in HeaderCohort)
)

// PathAuthSession reports a single sign-on event (POST, ?event=sign_in,
// sign_out or refused); the ID token travels in HeaderUserToken.
const PathAuthSession = "/internal/v1/auth/session"

// Header names of the internal API. Every Depot-* header of a request is
// bound into its signature (internal/httpauth), whether listed here or not.
const (
	HeaderUserToken   = "Depot-User-Token"   // the end user's bearer token, forwarded
	HeaderTrustedUser = "Depot-Trusted-User" // a user vouched for by web's trusted SSO proxy
	// HeaderSSHKey carries an SSH public key (authorized_keys form) whose
	// private key the SFTP client proved to hold in its handshake with web.
	HeaderSSHKey     = "Depot-Ssh-Key"
	HeaderKey        = "Depot-Key"         // percent-encoded storage key
	HeaderCohort     = "Depot-Cohort"      // percent-encoded cohort name
	HeaderPermission = "Depot-Permission"  // a permission the caller must hold in HeaderCohort (auth)
	HeaderPrefix     = "Depot-Prefix"      // percent-encoded listing prefix
	HeaderAfter      = "Depot-After"       // percent-encoded listing cursor
	HeaderVersion    = "Depot-Version"     // a version ID
	HeaderFileName   = "Depot-File-Name"   // percent-encoded original file name
	HeaderSize       = "Depot-Size"        // declared size in bytes
	HeaderSHA256     = "Depot-Sha256"      // lowercase hex SHA-256
	HeaderClass      = "Depot-Class"       // permanent | temporary
	HeaderOffset     = "Depot-Offset"      // append offset / current offset
	HeaderModified   = "Depot-Modified"    // RFC 3339 modification time
	HeaderUploadedBy = "Depot-Uploaded-By" // who uploaded a version
	HeaderRequestID  = "Depot-Request-Id"  // correlation ID from web to services
	HeaderWebNode    = "Depot-Web-Node"    // name of the web process
	HeaderClientIP   = "Depot-Client-Ip"   // the end user's address as web saw it
	HeaderUserAgent  = "Depot-User-Agent"  // the end user's User-Agent
	HeaderResume     = "Depot-Resume"      // "1" on the first chunk of a resumed client request
	// HeaderComplete "1" on an append commits the upload after the chunk,
	// with HeaderSize (when set) the expected total size.
	HeaderComplete = "Depot-Complete"
	// HeaderLazy "1" on an append says that more chunks of the same client
	// request follow: services may answer before the chunk is durable
	// (storage.Chunk.Lazy). The last chunk of a request goes without it.
	HeaderLazy = "Depot-Lazy"
	// HeaderReason is the error code for which web abandons an upload.
	HeaderReason = "Depot-Reason"
	// HeaderCRC32C is the CRC-32C (Castagnoli, 8 lowercase hex digits) of
	// a body as the sender computed it: services counts the bytes only if
	// they match. Required on every append and one-shot upload.
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
	Key         string            `json:"key"`
	Size        int64             `json:"size"` // -1 unknown
	SHA256      string            `json:"sha256,omitempty"`
	Class       depot.Class       `json:"class,omitempty"`
	FileName    string            `json:"file_name,omitempty"`
	Meta        map[string]string `json:"metadata,omitempty"`
	Resumable   bool              `json:"resumable,omitempty"`
	IfMatch     string            `json:"if_match,omitempty"`
	IfNoneMatch string            `json:"if_none_match,omitempty"`
}

// Session metadata of the tus concatenation extension: MetaConcat is
// ConcatPartial on a partial upload (never committed on its own) and
// ConcatFinal on the final upload built from partials.
const (
	MetaConcat    = "concat"
	ConcatPartial = "partial"
	ConcatFinal   = "final"
	// MetaConcatParts is a final upload's partial IDs, space-separated.
	MetaConcatParts = "concat_parts"
)

// ConcatUpload is the body of POST /internal/v1/concat: the final upload
// of the tus concatenation extension.
type ConcatUpload struct {
	Key      string            `json:"key"`
	Class    depot.Class       `json:"class,omitempty"`
	FileName string            `json:"file_name,omitempty"`
	Parts    []string          `json:"parts"` // partial upload IDs, in order
	Meta     map[string]string `json:"metadata,omitempty"`
}

// ConcatResult is the answer to POST /internal/v1/concat. The copy of the
// parts may take longer than web waits for a silent services tier
// (DEPOT_SERVICES_TIMEOUT), so services may answer 200 at once, send a
// newline every 200 ms while it works, and end with this JSON: then a
// failure is Error, not the status.
type ConcatResult struct {
	Upload  depot.Upload  `json:"upload"`
	Version *depot.Object `json:"version,omitempty"`
	Error   *ConcatError  `json:"error,omitempty"`
}

// ConcatError is a failure reported in a ConcatResult.
type ConcatError struct {
	Code    depot.Code `json:"code"`
	Message string     `json:"message"`
}

// CompleteUpload is the body of POST /internal/v1/uploads/{id}/complete.
type CompleteUpload struct {
	Size   int64  `json:"size"` // -1: do not check
	SHA256 string `json:"sha256,omitempty"`
}

// PlaceHold is the body of POST /internal/v1/holds.
type PlaceHold struct {
	Cohort string `json:"cohort"`
	Path   string `json:"path,omitempty"` // within the cohort; "" the whole cohort
	Reason string `json:"reason,omitempty"`
}

// Hold is a retention hold as the internal and public APIs show it.
type Hold struct {
	ID        int64     `json:"id"`
	Cohort    string    `json:"cohort"`
	Path      string    `json:"path,omitempty"` // within the cohort
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
}

// AppendResult is the answer to an append: the session, and the version
// when the append completed it.
type AppendResult struct {
	Upload  depot.Upload  `json:"upload"`
	Version *depot.Object `json:"version,omitempty"`
}

// ParseTime parses HeaderModified.
func ParseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
