-- A maintenance run cut short by a shutdown is "interrupted", not a
-- failure: verification resumes from its cursor, and the run does not count
-- towards failure alerts or the report's failures (PostgreSQL).

-- +goose Up
ALTER TABLE maint_runs DROP CONSTRAINT maint_runs_outcome_check;
ALTER TABLE maint_runs ADD CONSTRAINT maint_runs_outcome_check
    CHECK (outcome IN ('running', 'success', 'failure', 'interrupted'));

-- +goose Down
UPDATE maint_runs SET outcome = 'failure' WHERE outcome = 'interrupted';
ALTER TABLE maint_runs DROP CONSTRAINT maint_runs_outcome_check;
ALTER TABLE maint_runs ADD CONSTRAINT maint_runs_outcome_check
    CHECK (outcome IN ('running', 'success', 'failure'));
