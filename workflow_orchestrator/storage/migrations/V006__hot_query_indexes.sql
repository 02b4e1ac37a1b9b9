-- previous-release: compatible
-- Indexes for three periodic queries that read far more rows than they return once there are
-- many instances (measured with 1,000,000 by benchmarks/database_at_scale.py; see
-- docs/implementation/database_optimization.md). Indexes only: the previous release runs on
-- this schema unchanged.
--
-- IF NOT EXISTS: on a large table an operator may build them beforehand, without blocking
-- writes, with CREATE INDEX CONCURRENTLY and exactly these definitions; this migration then
-- finds them and does nothing (it runs in a transaction, so it cannot build concurrently).

-- Retention (instances/_retention.py) skips instances whose outbox rows are not published
-- yet: NOT EXISTS (SELECT 1 FROM outbox WHERE instance_id = ...) for every candidate. Without
-- an index that compares every candidate with every outbox row, so a batch slows down as the
-- outbox grows (a broker outage).
CREATE INDEX IF NOT EXISTS outbox_by_instance ON outbox (instance_id);

-- Recovery and the activation backlog drain (list_recoverable) page through the non-terminal
-- instances of a replica's partitions in instance_id order. The partial index by partition
-- cannot give that order, so each page sorted every active instance of the partitions again,
-- or walked the primary key through the finished ones; this one walks active instances only.
CREATE INDEX IF NOT EXISTS workflow_instances_active_by_id
    ON workflow_instances (instance_id)
    WHERE status NOT IN ('completed', 'cancelled', 'faulted');

-- The wake-up sweep (events/_wake.py, every 5 s on every replica) looks for pending
-- instances, and waiting ones with events in their inbox, untouched for a few seconds. It read
-- every active instance of the replica's partitions from the table; this index answers it
-- from the index alone (status and id included).
CREATE INDEX IF NOT EXISTS workflow_instances_to_wake
    ON workflow_instances (partition, updated_at) INCLUDE (status, instance_id)
    WHERE status IN ('pending', 'waiting');
