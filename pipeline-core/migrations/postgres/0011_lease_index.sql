-- A worker renews its leases by token every third of a lease: found through this small index of
-- the running attempts, not by scanning the queue's history, which grows with every run.
CREATE INDEX IF NOT EXISTS pipeline_work_leases ON pipeline_work (lease_token) WHERE state = 'running';
