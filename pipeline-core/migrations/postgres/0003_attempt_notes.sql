-- What an attempt reported besides errors: a load's mode and rows, a check's finding (PostgreSQL).
ALTER TABLE pipeline_attempts ADD COLUMN IF NOT EXISTS note TEXT;
