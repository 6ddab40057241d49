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
    seq    BIGINT NOT NULL PRIMARY KEY CHECK (seq >= 1),
    hashes BYTEA  NOT NULL CHECK (length(hashes) >= 32 AND length(hashes) % 32 = 0)
);

CREATE TRIGGER audit_tree_append_only
    BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_tree_no_truncate
    BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- No down migration: the audit trail is never rolled back by a migration.
