-- A verification pass that completed and found damaged or missing files is
-- "integrity_failed": not a success (the alert rule DepotIntegrityFailure
-- and `depot jobs` show it), not a failure of the job either (PostgreSQL).

-- +goose Up
ALTER TABLE maint_runs DROP CONSTRAINT maint_runs_outcome_check;
ALTER TABLE maint_runs ADD CONSTRAINT maint_runs_outcome_check
    CHECK (outcome IN ('running', 'success', 'failure', 'interrupted', 'integrity_failed'));

-- +goose Down
UPDATE maint_runs SET outcome = 'success' WHERE outcome = 'integrity_failed';
ALTER TABLE maint_runs DROP CONSTRAINT maint_runs_outcome_check;
ALTER TABLE maint_runs ADD CONSTRAINT maint_runs_outcome_check
    CHECK (outcome IN ('running', 'success', 'failure', 'interrupted'));
