-- A worker's claim asks whether attempts in a resource pool wait: answered from this index of
-- the queued pooled attempts alone, not by reading every queued attempt of the pipeline.
CREATE INDEX IF NOT EXISTS pipeline_work_queued_pooled
    ON pipeline_work (pipeline) WHERE state = 'queued' AND pool IS NOT NULL;
