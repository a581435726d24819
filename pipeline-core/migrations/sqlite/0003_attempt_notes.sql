-- What an attempt reported besides errors: a load's mode and rows, a check's finding (SQLite).
ALTER TABLE pipeline_attempts ADD COLUMN note TEXT;
