-- Every claim and every outcome rewrites an attempt's row, and each index the new row belongs
-- in gets an entry: indexes that nothing reads cost every attempt of every distributed run.
-- The lease tokens' index served renewals that now find each row by its id; the outcome
-- write, which also finds rows by id, was planned onto it instead, reading the dead entries
-- of earlier claims. A run's attempts are looked up by run only while they are live (a
-- cancel, a rescue): an ended attempt needs no entry.
DROP INDEX IF EXISTS pipeline_work_leases;
DROP INDEX IF EXISTS pipeline_work_run;
CREATE INDEX IF NOT EXISTS pipeline_work_live_by_run
    ON pipeline_work (run_id) WHERE state IN ('queued', 'running');
