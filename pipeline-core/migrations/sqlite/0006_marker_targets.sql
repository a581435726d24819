-- Which databases a complete task wrote to, by a stable identity without credentials, so that
-- pointing a name at another database makes the task not complete there (SQLite).
ALTER TABLE pipeline_markers ADD COLUMN targets TEXT;
