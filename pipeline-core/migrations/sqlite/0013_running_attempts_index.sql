-- A run that ends cancels its attempts still running: found through this index of the running
-- attempts alone. Without it the update walked every attempt of the run (30 ms at the end of a
-- run of 100,000 tasks). Attempts recorded when they finish never enter it.
CREATE INDEX IF NOT EXISTS pipeline_attempts_running
    ON pipeline_attempts (run_id) WHERE status = 'running';
