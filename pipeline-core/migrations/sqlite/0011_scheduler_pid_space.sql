-- Which process ID space the scheduler lease's holder lives in, as for run locks: a scheduler
-- that can see the holder's pid and finds it gone takes the lease over at once, without
-- waiting for it to run out (SQLite).
ALTER TABLE pipeline_scheduler_leases ADD COLUMN pid_space TEXT NOT NULL DEFAULT '';
