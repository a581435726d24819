-- What a check measured, as a number (SQLite).
ALTER TABLE pipeline_attempts ADD COLUMN value REAL;
