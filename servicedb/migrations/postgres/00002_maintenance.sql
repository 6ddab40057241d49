-- Maintenance jobs (cleanup, verify, report): run history, stored reports,
-- resumable cursors and per-file cleanup failure counts (PostgreSQL).

-- +goose Up
CREATE TABLE maint_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         TEXT   NOT NULL,
    trigger     TEXT   NOT NULL DEFAULT '',
    node        TEXT   NOT NULL DEFAULT '',
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT,
    outcome     TEXT   NOT NULL CHECK (outcome IN ('running', 'success', 'failure')),
    error_code  TEXT   NOT NULL DEFAULT '',
    summary     TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX maint_runs_job ON maint_runs (job, id);

CREATE TABLE maint_reports (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    body       TEXT   NOT NULL
);

CREATE TABLE maint_cursors (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE maint_cleanup_failures (
    storage_key TEXT     NOT NULL PRIMARY KEY,
    failures    INTEGER  NOT NULL,
    last_ms     BIGINT   NOT NULL,
    last_code   TEXT     NOT NULL DEFAULT '',
    alerted     SMALLINT NOT NULL DEFAULT 0 CHECK (alerted IN (0, 1))
);

-- +goose Down
DROP TABLE maint_cleanup_failures;
DROP TABLE maint_cursors;
DROP TABLE maint_reports;
DROP TABLE maint_runs;
