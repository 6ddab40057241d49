-- Maintenance jobs (cleanup, verify, report): run history, stored reports,
-- resumable cursors and per-file cleanup failure counts (SQLite).

-- +goose Up
CREATE TABLE maint_runs (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    trigger     TEXT    NOT NULL DEFAULT '',
    node        TEXT    NOT NULL DEFAULT '',
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'success', 'failure')),
    error_code  TEXT    NOT NULL DEFAULT '',
    summary     TEXT    NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX maint_runs_job ON maint_runs (job, id);

CREATE TABLE maint_reports (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    body       TEXT    NOT NULL
) STRICT;

CREATE TABLE maint_cursors (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE maint_cleanup_failures (
    storage_key TEXT    NOT NULL PRIMARY KEY,
    failures    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    last_code   TEXT    NOT NULL DEFAULT '',
    alerted     INTEGER NOT NULL DEFAULT 0 CHECK (alerted IN (0, 1))
) STRICT;

-- +goose Down
DROP TABLE maint_cleanup_failures;
DROP TABLE maint_cursors;
DROP TABLE maint_reports;
DROP TABLE maint_runs;
