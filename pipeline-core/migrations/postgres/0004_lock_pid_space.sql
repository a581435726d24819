-- Which process ID space a lock holder's pid belongs to (kernel boot and PID namespace), so that
-- only a process that can see the holder's pid judges it by that pid (PostgreSQL).
ALTER TABLE pipeline_locks ADD COLUMN IF NOT EXISTS pid_space TEXT NOT NULL DEFAULT '';
