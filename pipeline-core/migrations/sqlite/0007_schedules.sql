-- Schedules: each tick fired (its primary key makes firing a tick twice impossible, whoever
-- tries), and the lease that makes one `daily schedule` process the active one.
CREATE TABLE IF NOT EXISTS pipeline_schedule_ticks (
    pipeline TEXT NOT NULL,
    schedule TEXT NOT NULL,
    tick_at BIGINT NOT NULL,
    partition TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    -- fired, skipped, or the outcome of its run (succeeded, failed, cancelled)
    status TEXT NOT NULL,
    run_id BIGINT,
    deadline_alerted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pipeline, schedule, tick_at)
);

CREATE TABLE IF NOT EXISTS pipeline_scheduler_leases (
    pipeline TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
