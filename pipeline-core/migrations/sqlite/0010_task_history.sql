-- A task's attempts across partitions (the web view's task page), without reading them all.
CREATE INDEX IF NOT EXISTS pipeline_attempts_by_task ON pipeline_attempts (task, run_id);
