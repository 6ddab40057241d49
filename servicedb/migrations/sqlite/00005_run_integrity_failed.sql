-- A verification pass that completed and found damaged or missing files is
-- "integrity_failed": not a success (the alert rule DepotIntegrityFailure
-- and `depot jobs` show it), not a failure of the job either (SQLite: a
-- CHECK constraint changes only by rebuilding the table).

-- +goose Up
CREATE TABLE maint_runs_new (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    trigger     TEXT    NOT NULL DEFAULT '',
    node        TEXT    NOT NULL DEFAULT '',
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'success', 'failure', 'interrupted', 'integrity_failed')),
    error_code  TEXT    NOT NULL DEFAULT '',
    summary     TEXT    NOT NULL DEFAULT '{}'
) STRICT;
INSERT INTO maint_runs_new SELECT * FROM maint_runs;
DROP TABLE maint_runs;
ALTER TABLE maint_runs_new RENAME TO maint_runs;
CREATE INDEX maint_runs_job ON maint_runs (job, id);

-- +goose Down
CREATE TABLE maint_runs_old (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    trigger     TEXT    NOT NULL DEFAULT '',
    node        TEXT    NOT NULL DEFAULT '',
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'success', 'failure', 'interrupted')),
    error_code  TEXT    NOT NULL DEFAULT '',
    summary     TEXT    NOT NULL DEFAULT '{}'
) STRICT;
INSERT INTO maint_runs_old SELECT id, job, trigger, node, started_ms, finished_ms,
    CASE outcome WHEN 'integrity_failed' THEN 'success' ELSE outcome END, error_code, summary FROM maint_runs;
DROP TABLE maint_runs;
ALTER TABLE maint_runs_old RENAME TO maint_runs;
CREATE INDEX maint_runs_job ON maint_runs (job, id);
