-- The scheduler: durable timers of parked instances, the leader lease of the schedule-firing
-- loop, and the progress of each definition's schedule.

-- One row per pending timer of a parked instance (a `wait`, a task or workflow `timeout`, a retry
-- delay), written with the snapshot that parks the instance and deleted by the first snapshot
-- after it wakes. The owner of the instance's partition fires it: due rows are claimed with
-- FOR UPDATE SKIP LOCKED (claimed_until keeps a firing in progress from being claimed again) and
-- the instance is activated; lease_epoch is the partition epoch the row was written under.
CREATE TABLE workflow_timers (
    instance_id    uuid        NOT NULL,
    timer_key      text        NOT NULL,
    partition      integer     NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('wait', 'timeout', 'retry', 'other')),
    due_at         timestamptz NOT NULL,
    lease_epoch    bigint      NOT NULL DEFAULT 0,
    claimed_until  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, timer_key)
);
CREATE INDEX workflow_timers_due ON workflow_timers (partition, due_at);

-- Leader leases: one row per elected role ('schedules'). epoch grows with every grant and is the
-- fencing token: a write of the schedule loop checks that its epoch still holds the lease.
CREATE TABLE leader_leases (
    role        text        PRIMARY KEY,
    leader_id   text,
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO leader_leases (role) VALUES ('schedules');

-- Per definition version with a cron/every/after schedule: the last tick started (or skipped),
-- a tick buffered by the buffer-one overlap policy, and the epoch of the leader that wrote it.
CREATE TABLE schedule_state (
    definition_id       text        NOT NULL,
    definition_version  text        NOT NULL,
    last_tick           timestamptz,
    buffered_tick       timestamptz,
    last_instance_id    uuid,
    leader_epoch        bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (definition_id, definition_version)
);

-- Instances parked before this migration kept their wake-up time in the snapshot only.
INSERT INTO workflow_timers (instance_id, timer_key, partition, kind, due_at, lease_epoch)
SELECT instance_id, 'wake', partition, 'other', (snapshot ->> 'wakeAt')::timestamptz, lease_epoch
FROM workflow_instances
WHERE status = 'waiting' AND snapshot ->> 'wakeAt' IS NOT NULL;

-- Replicas sharing the database, renewed with their partition leases: each takes a fair share
-- of the partitions (ceil(partitions / live members)) and gives back what it holds above it.
CREATE TABLE cluster_members (
    owner_id    text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now()
);
