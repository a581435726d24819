-- Distributed runs need PostgreSQL (`daily worker` refuses SQLite); the tables exist here too
-- so that both backends stay at one schema version.
CREATE TABLE IF NOT EXISTS pipeline_workers (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    slots INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopping INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS pipeline_work (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    unit_mode INTEGER NOT NULL,
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'attempt',
    options TEXT,
    pool TEXT,
    pool_size INTEGER,
    state TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    worker_id TEXT,
    lease_token TEXT,
    lease_until INTEGER,
    claimed_at INTEGER,
    status TEXT,
    error TEXT,
    fatal INTEGER,
    note TEXT,
    value REAL,
    targets TEXT,
    log TEXT,
    finished_at INTEGER
);

-- `daily cancel RUN_ID`: the run's own lock heartbeat finds the request and cancels the run.
ALTER TABLE pipeline_locks ADD COLUMN cancel_requested_at INTEGER;

-- Each attempt's own log (`daily logs`), bounded by the runtime; read only on demand.
ALTER TABLE pipeline_attempts ADD COLUMN log TEXT;
