-- Which scheduler process runs a fired tick's run, and when it last said so by the store's
-- clock: a scheduler taking over runs a tick again only when that process is gone, never
-- while it lives (it may have lost the lease and still be running the tick).
ALTER TABLE pipeline_schedule_ticks ADD COLUMN holder_token TEXT NOT NULL DEFAULT '';
ALTER TABLE pipeline_schedule_ticks ADD COLUMN holder_host TEXT NOT NULL DEFAULT '';
ALTER TABLE pipeline_schedule_ticks ADD COLUMN holder_pid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pipeline_schedule_ticks ADD COLUMN holder_pid_space TEXT NOT NULL DEFAULT '';
ALTER TABLE pipeline_schedule_ticks ADD COLUMN heartbeat_at BIGINT NOT NULL DEFAULT 0;
-- The few ticks fired and not ended, found without reading a dense schedule's history.
CREATE INDEX IF NOT EXISTS pipeline_schedule_ticks_fired
    ON pipeline_schedule_ticks (pipeline, holder_token) WHERE status = 'fired';
