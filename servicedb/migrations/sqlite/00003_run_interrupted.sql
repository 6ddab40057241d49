-- A maintenance run cut short by a shutdown is "interrupted", not a
-- failure: verification resumes from its cursor, and the run does not count
-- towards failure alerts or the report's failures (SQLite: a CHECK
-- constraint changes only by rebuilding the table).

-- +goose Up
CREATE TABLE maint_runs_new (
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
    outcome     TEXT    NOT NULL CHECK (outcome IN ('running', 'success', 'failure')),
    error_code  TEXT    NOT NULL DEFAULT '',
    summary     TEXT    NOT NULL DEFAULT '{}'
) STRICT;
INSERT INTO maint_runs_old SELECT id, job, trigger, node, started_ms, finished_ms,
    CASE outcome WHEN 'interrupted' THEN 'failure' ELSE outcome END, error_code, summary FROM maint_runs;
DROP TABLE maint_runs;
ALTER TABLE maint_runs_old RENAME TO maint_runs;
CREATE INDEX maint_runs_job ON maint_runs (job, id);
