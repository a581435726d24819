-- What a check measured, as a number (PostgreSQL).
ALTER TABLE pipeline_attempts ADD COLUMN IF NOT EXISTS value DOUBLE PRECISION;
