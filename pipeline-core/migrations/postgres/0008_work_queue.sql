-- Distributed runs: the attempts a coordinating `daily run --distributed` queues, which
-- `daily worker` processes claim (FOR UPDATE SKIP LOCKED) and run under a lease on this
-- database's clock, and the workers themselves with their heartbeats.
CREATE TABLE IF NOT EXISTS pipeline_workers (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    slots INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopping BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS pipeline_work (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL,
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    unit_mode BOOLEAN NOT NULL,
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    -- the graph of the run: a worker with another graph does not claim it
    fingerprint TEXT NOT NULL,
    priority INTEGER NOT NULL,
    -- attempt (of task), or run: a detached run's coordination, whose options are the run's
    -- and which a worker takes on (again, when its coordinator's lease ran out)
    kind TEXT NOT NULL DEFAULT 'attempt',
    options TEXT,
    -- the task's resource pool and its size: no claim makes more of it run than that
    pool TEXT,
    pool_size INTEGER,
    -- queued, running, done (the worker's outcome is in status), cancelled (by the run),
    -- lost (its lease ran out), handed_back (its worker stopped before it ended)
    state TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    worker_id TEXT,
    lease_token TEXT,
    lease_until BIGINT,
    claimed_at BIGINT,
    status TEXT,
    error TEXT,
    fatal BOOLEAN,
    note TEXT,
    value DOUBLE PRECISION,
    targets TEXT,
    log TEXT,
    finished_at BIGINT
);

CREATE INDEX IF NOT EXISTS pipeline_work_queued
    ON pipeline_work (pipeline, priority DESC, id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS pipeline_work_run ON pipeline_work (run_id, state);
CREATE INDEX IF NOT EXISTS pipeline_work_pool_running
    ON pipeline_work (pipeline, pool) WHERE state = 'running' AND pool IS NOT NULL;

-- `daily cancel RUN_ID`: the run's own lock heartbeat finds the request and cancels the run.
ALTER TABLE pipeline_locks ADD COLUMN IF NOT EXISTS cancel_requested_at BIGINT;

-- Each attempt's own log (`daily logs`), bounded by the runtime; read only on demand.
ALTER TABLE pipeline_attempts ADD COLUMN log TEXT;
