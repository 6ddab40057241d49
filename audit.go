package depot

import (
	"context"
	"time"
)

// Action is what an audit record is about. The set is closed: the audit
// database rejects any other value on insert.
type Action string

// The closed set of audit actions.
const (
	ActionUploadStarted     Action = "upload.started"
	ActionUploadCompleted   Action = "upload.completed"
	ActionUploadFailed      Action = "upload.failed"
	ActionUploadAborted     Action = "upload.aborted"
	ActionUploadResumed     Action = "upload.resumed" // a resumable upload inspected or continued
	ActionUploadExpired     Action = "upload.expired"
	ActionDownload          Action = "file.download"
	ActionList              Action = "file.list"
	ActionStat              Action = "file.stat"
	ActionDelete            Action = "file.delete"
	ActionCleanupScheduled  Action = "cleanup.scheduled"
	ActionCleanupCompleted  Action = "cleanup.completed"
	ActionCleanupFailed     Action = "cleanup.failed"
	ActionIntegrityVerified Action = "integrity.verified"
	ActionIntegrityFailed   Action = "integrity.failed"
	ActionOrphanDetected    Action = "orphan.detected"
	ActionAccessDenied      Action = "access.denied"
	ActionAuthFailed        Action = "auth.failed"
	ActionAuthThrottled     Action = "auth.throttled"
	ActionTokenCreated      Action = "token.created"
	ActionTokenRevoked      Action = "token.revoked"
	ActionUserCreated       Action = "user.created"
	ActionUserDisabled      Action = "user.disabled"
	ActionCohortCreated     Action = "cohort.created"
	ActionGrantChanged      Action = "grant.changed"
	ActionBackupCreated     Action = "backup.created"
	ActionRestoreCompleted  Action = "restore.completed"
	ActionReportGenerated   Action = "report.generated"
	ActionJobFailed         Action = "job.failed"
	ActionDownloadCompleted Action = "download.completed" // closes a file.download: bytes moved, stream complete or not
	ActionUndelete          Action = "file.undelete"
	ActionPurge             Action = "file.purge" // bytes of a version removed for good
	ActionRestoreVersion    Action = "file.restore_version"
	ActionHoldPlaced        Action = "hold.placed"
	ActionHoldReleased      Action = "hold.released"
	// Single sign-on (OpenID Connect). A sign-in is a person arriving
	// through the identity provider (browser or depot login); a refused one
	// carries its reason in Metadata["reason"].
	ActionSignIn         Action = "auth.sign_in"
	ActionSignOut        Action = "auth.sign_out"
	ActionSignInRefused  Action = "auth.sign_in_refused"
	ActionIdentityLinked Action = "identity.linked" // an existing user bound to a provider's subject
	ActionFileScanned    Action = "file.scanned"    // a committed version rescanned (depot scan): its verdict
	// ActionRestoreFiles: the bytes of a kept version put back from a
	// backup into the live storage (depot restore --files-only), checked
	// against the version's size and SHA-256; the database is not changed.
	ActionRestoreFiles Action = "restore.files"
	// ActionSSHKeyAdded and ActionSSHKeyRemoved: an SSH public key
	// registered to, or revoked from, a user (depot users add-key,
	// remove-key); Metadata names the user and the key's fingerprint.
	ActionSSHKeyAdded   Action = "ssh_key.added"
	ActionSSHKeyRemoved Action = "ssh_key.removed"
	// ActionKeysRotated: a run of depot keys rotate (encryption at rest):
	// the data keys of the objects it re-wrapped under the current KEK.
	ActionKeysRotated Action = "keys.rotated"
	// ActionStorageEncrypted: a run of depot keys encrypt-existing: the
	// unencrypted objects it replaced by their encryption, in place.
	ActionStorageEncrypted Action = "storage.encrypted"
)

// Actions lists every valid Action, in a stable order.
var Actions = []Action{
	ActionUploadStarted, ActionUploadCompleted, ActionUploadFailed, ActionUploadAborted,
	ActionUploadResumed, ActionUploadExpired, ActionDownload, ActionList, ActionStat,
	ActionDelete, ActionCleanupScheduled, ActionCleanupCompleted, ActionCleanupFailed,
	ActionIntegrityVerified, ActionIntegrityFailed, ActionOrphanDetected, ActionAccessDenied,
	ActionAuthFailed, ActionAuthThrottled, ActionTokenCreated, ActionTokenRevoked,
	ActionUserCreated, ActionUserDisabled, ActionCohortCreated, ActionGrantChanged,
	ActionBackupCreated, ActionRestoreCompleted, ActionReportGenerated, ActionJobFailed,
	ActionDownloadCompleted, ActionUndelete, ActionPurge, ActionRestoreVersion, ActionHoldPlaced,
	ActionHoldReleased,
	ActionSignIn, ActionSignOut, ActionSignInRefused, ActionIdentityLinked,
	ActionFileScanned,
	ActionRestoreFiles,
	ActionKeysRotated, ActionStorageEncrypted,
	ActionSSHKeyAdded, ActionSSHKeyRemoved,
}

// Outcome of an audited operation.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeDenied  Outcome = "denied"
)

// AuditEvent is one audited operation as the services tier reports it. The
// audit log assigns Seq, Time (when zero), PrevHash and Hash.
type AuditEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"` // UTC, millisecond precision
	Action    Action    `json:"action"`
	Outcome   Outcome   `json:"outcome"`
	ErrorCode string    `json:"error_code,omitempty"`

	Actor      string `json:"actor,omitempty"`       // user name, or "system" for jobs
	AuthMethod string `json:"auth_method,omitempty"` // "token", "trusted_header", "internal_key", "cli", "oidc"
	Cohort     string `json:"cohort,omitempty"`
	Key        string `json:"path,omitempty"`      // storage key
	FileName   string `json:"file_name,omitempty"` // original file name as sent by the client
	UploadID   string `json:"upload_id,omitempty"`

	DeclaredSize     int64  `json:"declared_size"` // -1 unknown
	BytesTransferred int64  `json:"bytes_transferred"`
	StoredSize       int64  `json:"stored_size"` // -1 unknown
	SHA256           string `json:"sha256,omitempty"`

	ServerRole    string `json:"server_role"`
	WebNode       string `json:"web_node,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	ClientIP      string `json:"client_ip,omitempty"`
	UserAgent     string `json:"user_agent,omitempty"`

	StreamStart    *time.Time `json:"stream_start,omitempty"`
	StreamComplete *time.Time `json:"stream_complete,omitempty"`
	DurationMS     int64      `json:"duration_ms"`

	FileClass           Class      `json:"file_class,omitempty"`
	CleanupScheduledFor *time.Time `json:"cleanup_scheduled_for,omitempty"`

	Metadata map[string]string `json:"metadata,omitempty"`

	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditLog appends audit records. Append returns only after the record is
// durable; an error means the audited operation must fail (fail closed).
type AuditLog interface {
	Append(ctx context.Context, ev AuditEvent) (AuditEvent, error)
}
