-- A worker looks for a detached run to coordinate (queued, or its coordinator's lease run out)
-- about once a second: found through this index of the live runs alone. Without it the look
-- walked every attempt that ever ran (the running attempts' index keeps an entry of each until
-- VACUUM), 30 ms and more a look after a few large runs.
CREATE INDEX IF NOT EXISTS pipeline_work_live_runs
    ON pipeline_work (pipeline, id) WHERE kind = 'run' AND state IN ('queued', 'running');
