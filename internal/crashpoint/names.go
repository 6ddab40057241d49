package crashpoint

// The steps where a test can crash services.
const (
	// Staged: every byte of an upload session is durable in its staging
	// area; nothing is published yet.
	Staged = "upload-staged"
	// BeforeCommit: a new version's bytes are published as its object;
	// the transaction that records the version has not run.
	BeforeCommit = "before-commit"
	// AfterCommit: the version and its audit record are committed; the
	// answer has not been sent.
	AfterCommit = "after-commit"
	// AfterPurge: versions are marked purged with their audit record;
	// their objects have not been deleted.
	AfterPurge = "after-purge"
	// Rewrapped: depot keys rotate re-wrapped one object's data key;
	// others remain.
	Rewrapped = "keys-rewrapped"
	// Encrypted: depot keys encrypt-existing replaced one unencrypted
	// object by its encryption; others remain.
	Encrypted = "keys-encrypted"
	// SealedWritten: an encrypting driver (storage/sealed) wrote a
	// chunk's segments, their tags recorded; the session's offset is not
	// saved yet, so a resume writes those segments again.
	SealedWritten = "sealed-written"
)

// The steps where a test can hold a process (Pause).
const (
	// BackupSnapshotTaken: a backup holds its lease and has taken its
	// database snapshot and read its manifest; it has copied no object.
	BackupSnapshotTaken = "backup-snapshot-taken"
	// ConcatCopying: a final upload (tus concatenation) has copied its
	// first part into its session; the rest is not copied yet.
	ConcatCopying = "concat-copying"
)
