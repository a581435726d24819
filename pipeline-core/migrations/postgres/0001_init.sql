-- Runs, attempts, completion markers and run locks (PostgreSQL).
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id BIGSERIAL PRIMARY KEY,
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    status TEXT NOT NULL,
    targets TEXT NOT NULL,
    unit_mode BIGINT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    tasks_total BIGINT,
    tasks_failed BIGINT
);
CREATE INDEX IF NOT EXISTS pipeline_runs_by_partition ON pipeline_runs (pipeline, partition, namespace);

CREATE TABLE IF NOT EXISTS pipeline_attempts (
    run_id BIGINT NOT NULL REFERENCES pipeline_runs (id),
    task TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    error TEXT,
    PRIMARY KEY (run_id, task, attempt)
);

CREATE TABLE IF NOT EXISTS pipeline_markers (
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    completed_at BIGINT NOT NULL,
    PRIMARY KEY (pipeline, partition, namespace, task)
);

CREATE TABLE IF NOT EXISTS pipeline_locks (
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    PRIMARY KEY (pipeline, partition, namespace)
);
