-- The Merkle tree over the audit trail (RFC 6962, as golang.org/x/mod/sumdb/tlog
-- builds it), stored incrementally so that checkpoints and proofs are cheap.
--
-- The leaves are the records' chain hashes in seq order: leaf i (from 0) is
-- SHA-256(0x00 || the 32 bytes of the hash of record i+1). Row seq holds the
-- hashes tlog.StoredHashes returns when record seq is appended: the leaf
-- hash, then the hash of every subtree that record completes, 32 bytes each,
-- lowest level first. Written in the transaction that appends the record;
-- append-only like audit_events. It is a cache of what the records imply:
-- verification recomputes it from the records.

-- +goose Up
CREATE TABLE audit_tree (
    seq    INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    hashes BLOB    NOT NULL CHECK (length(hashes) >= 32 AND length(hashes) % 32 = 0)
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit_tree is append-only: UPDATE refused');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit_tree is append-only: DELETE refused');
END;
-- +goose StatementEnd

-- No down migration: the audit trail is never rolled back by a migration.
