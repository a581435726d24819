-- Alerts still open per task and partition, so that a later success resolves them (PostgreSQL).
CREATE TABLE IF NOT EXISTS pipeline_alerts (
    pipeline TEXT NOT NULL,
    partition TEXT NOT NULL,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    PRIMARY KEY (pipeline, partition, namespace, task)
);
