-- Which databases a complete task wrote to, by a stable identity without credentials, so that
-- pointing a name at another database makes the task not complete there (PostgreSQL).
ALTER TABLE pipeline_markers ADD COLUMN IF NOT EXISTS targets TEXT;
