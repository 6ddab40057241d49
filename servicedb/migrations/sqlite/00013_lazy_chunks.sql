-- Lazy chunks (docs/architecture.md, the upload path): a session whose last
-- chunk was appended without being made durable, because more of the same
-- client request followed. A resume makes it durable before it reports the
-- session's offset.

-- +goose Up
ALTER TABLE uploads ADD COLUMN lazy INTEGER NOT NULL DEFAULT 0 CHECK (lazy IN (0, 1));

-- +goose Down
ALTER TABLE uploads DROP COLUMN lazy;
