-- Runs, attempts, completion markers and run locks (SQLite).
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    status TEXT NOT NULL,
    targets TEXT NOT NULL,
    unit_mode INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    tasks_total INTEGER,
    tasks_failed INTEGER
);
CREATE INDEX IF NOT EXISTS pipeline_runs_by_partition ON pipeline_runs (pipeline, partition, namespace);

CREATE TABLE IF NOT EXISTS pipeline_attempts (
    run_id INTEGER NOT NULL REFERENCES pipeline_runs (id),
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    error TEXT,
    PRIMARY KEY (run_id, task, attempt)
);

CREATE TABLE IF NOT EXISTS pipeline_markers (
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    completed_at INTEGER NOT NULL,
    PRIMARY KEY (pipeline, partition, namespace, task)
);

CREATE TABLE IF NOT EXISTS pipeline_locks (
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    PRIMARY KEY (pipeline, partition, namespace)
);
