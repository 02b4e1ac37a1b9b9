-- Generated from workflow_orchestrator/storage/migrations by `make schema`; do not edit.
-- Apply with: psql -v ON_ERROR_STOP=1 -f schema/init.sql <database>
BEGIN;
CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer     PRIMARY KEY,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  integer     NOT NULL,
    previous_release_compatible boolean NOT NULL DEFAULT false,
    release       text        NOT NULL DEFAULT ''
);

-- V001__initial_schema.sql
-- Workflow definitions, workflow instances and the partition leases that spread instances over
-- replicas. Instances carry their partition and lease fencing data from the start so that many
-- replicas can share the work later without rewriting the table.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
DO $$
BEGIN
    -- Optional: nothing depends on pgcrypto (gen_random_uuid() is built in since PostgreSQL 13),
    -- so a server without it, or a role that may not create it, is fine.
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pgcrypto;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgcrypto not created (insufficient privilege); it is optional';
        END;
    END IF;
END
$$;

CREATE TABLE workflow_definitions (
    definition_id  text        NOT NULL CHECK (definition_id ~ '^[A-Za-z0-9_.-]{1,200}$'),
    version        text        NOT NULL,
    namespace      text        NOT NULL,
    name           text        NOT NULL,
    document       jsonb       NOT NULL,
    source_text    text        NOT NULL,
    content_hash   text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    PRIMARY KEY (definition_id, version)
);

CREATE INDEX workflow_definitions_by_namespace_name
    ON workflow_definitions (namespace, name);
CREATE INDEX workflow_definitions_by_text
    ON workflow_definitions USING gin ((definition_id || ' ' || namespace || ' ' || name) gin_trgm_ops);

CREATE TABLE partition_leases (
    partition   integer     PRIMARY KEY,
    owner_id    text,
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz
);

INSERT INTO partition_leases (partition) SELECT generate_series(0, 63);

CREATE TABLE workflow_instances (
    instance_id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    definition_id       text        NOT NULL,
    definition_version  text        NOT NULL,
    status              text        NOT NULL CHECK (status IN
        ('pending', 'running', 'waiting', 'suspended', 'cancelled', 'faulted', 'completed')),
    business_key        text,
    idempotency_key     text        UNIQUE,
    input               jsonb       NOT NULL DEFAULT '{}'::jsonb,
    output              jsonb,
    error               jsonb,
    context             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    partition           integer     NOT NULL CHECK (partition >= 0),
    lease_owner         text,
    lease_epoch         bigint      NOT NULL DEFAULT 0,
    snapshot            jsonb,
    snapshot_version    bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    FOREIGN KEY (definition_id, definition_version)
        REFERENCES workflow_definitions (definition_id, version)
);

CREATE INDEX workflow_instances_by_definition_status
    ON workflow_instances (definition_id, status, created_at);
CREATE INDEX workflow_instances_active_by_partition
    ON workflow_instances (partition)
    WHERE status NOT IN ('completed', 'cancelled', 'faulted');
CREATE INDEX workflow_instances_by_created_at ON workflow_instances (created_at);
CREATE INDEX workflow_instances_by_updated_at ON workflow_instances (updated_at);
CREATE INDEX workflow_instances_by_business_key
    ON workflow_instances USING gin (business_key gin_trgm_ops);
CREATE INDEX workflow_instances_by_input
    ON workflow_instances USING gin (definition_id, input jsonb_path_ops);
CREATE INDEX workflow_instances_by_context
    ON workflow_instances USING gin (context jsonb_path_ops);
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (1, 'initial_schema', '9e33d65471092599904655fa288f7a325a09a102ff2b76bcdc01242d6a292a73', 0, false, '0.1.0');

-- V002__instance_history.sql
-- The task lifecycle of each instance (GET /workflow-instances/{id}/history), written in the same
-- transaction as the snapshot that produced it, and the counter that numbers it.
--
-- history_seq on the instance row is the last seq handed out for that instance: writers bump it
-- in the UPDATE that locks the row, so concurrent writers for one instance never pick the same
-- seq. Cursor pagination of instance lists walks (created_at, instance_id).

ALTER TABLE workflow_instances
    ADD COLUMN history_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE workflow_instance_history (
    instance_id  uuid        NOT NULL REFERENCES workflow_instances (instance_id) ON DELETE CASCADE,
    seq          bigint      NOT NULL CHECK (seq > 0),
    task_ref     text        NOT NULL DEFAULT '',
    kind         text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (instance_id, seq)
);

DROP INDEX workflow_instances_by_created_at;
CREATE INDEX workflow_instances_by_created_at_id ON workflow_instances (created_at, instance_id);
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (2, 'instance_history', '03662a56d42700b1af9378ffeb0ca3f27223cd3fab379dc38108e78ec3831b09', 0, false, '0.1.0');

-- V003__events.sql
-- Event processing: the database event source, deduplication, the subscriptions of instances
-- waiting in `listen`, their inboxes, retained unmatched events, dead letters and the
-- transactional outbox. See docs/architecture.md ("Events") for how the router uses them.

-- The database source. Producers call workflow_publish_event(event jsonb) (or insert rows
-- directly); the service claims rows with FOR UPDATE SKIP LOCKED under a short claim, routes
-- them and deletes them in the routing transaction. A row trigger wakes the service with
-- NOTIFY workflow_events (PostgreSQL sends one notification per transaction for identical
-- ones); the service also polls, so a lost notification only delays.
CREATE TABLE events (
    event_seq      bigserial   PRIMARY KEY,
    event          jsonb       NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    claimed_by     text,
    claimed_until  timestamptz
);

CREATE FUNCTION workflow_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('workflow_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION workflow_events_notify();

-- Publish one CloudEvent (structured JSON form) to the database source; returns its sequence.
-- Checks the attributes CloudEvents 1.0 requires, so a producer learns of a broken event at
-- once instead of finding it in event_dead_letters later.
CREATE FUNCTION workflow_publish_event(event jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    attribute text;
    seq bigint;
BEGIN
    IF event IS NULL OR jsonb_typeof(event) <> 'object' THEN
        RAISE EXCEPTION 'a CloudEvent must be a JSON object'
            USING HINT = 'pass the structured form: {"specversion": "1.0", "id": ..., "source": ..., "type": ...}';
    END IF;
    FOREACH attribute IN ARRAY ARRAY['specversion', 'id', 'source', 'type'] LOOP
        IF jsonb_typeof(event -> attribute) IS DISTINCT FROM 'string' OR event ->> attribute = '' THEN
            RAISE EXCEPTION 'the CloudEvent attribute "%" is missing or not a non-empty string', attribute
                USING HINT = 'CloudEvents 1.0 requires specversion, id, source and type';
        END IF;
    END LOOP;
    IF event ->> 'specversion' <> '1.0' THEN
        RAISE EXCEPTION 'specversion "%" is not supported', event ->> 'specversion'
            USING HINT = 'set "specversion": "1.0"';
    END IF;
    INSERT INTO events (event) VALUES (event) RETURNING event_seq INTO seq;
    RETURN seq;
END
$$;

-- Events routed already, by (source, id), kept for eventProcessing.deduplicationWindow.
CREATE TABLE processed_events (
    source        text        NOT NULL,
    id            text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX processed_events_by_time ON processed_events (processed_at);

-- The distinct correlation shapes of listen filters: an event type ('' = any type) and the
-- sorted [name, from-expression] pairs of its `correlate`. Few rows; the router caches them.
CREATE TABLE subscription_shapes (
    shape_id    serial  PRIMARY KEY,
    event_type  text    NOT NULL,
    correlate   jsonb   NOT NULL,
    UNIQUE (event_type, correlate)
);

-- One row per filter an instance waits on, written and deleted with the instance's snapshots.
-- An event looks up (event_type, shape_id, corr_key) with the key it computes for each shape,
-- so matching does not grow with the number of waiting instances. shape_id 0: no correlation;
-- corr_key '': any value (the correlation is not fixed yet). attributes: the filter's static
-- context attributes (besides type), checked by containment.
CREATE TABLE event_subscriptions (
    instance_id   uuid        NOT NULL,
    partition     integer     NOT NULL,
    filter_index  integer     NOT NULL,
    task_ref      text        NOT NULL,
    event_type    text        NOT NULL,
    shape_id      integer     NOT NULL,
    corr_key      text        NOT NULL,
    attributes    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_subscriptions_by_key ON event_subscriptions (event_type, shape_id, corr_key);
CREATE INDEX event_subscriptions_by_instance ON event_subscriptions (instance_id);

-- Events delivered to an instance and not consumed yet (consumed ones are deleted by the
-- snapshot that consumed them).
CREATE TABLE instance_inbox (
    inbox_seq    bigserial   PRIMARY KEY,
    instance_id  uuid        NOT NULL,
    event_key    text        NOT NULL,
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (instance_id, event_key)
);

-- Definitions started by `schedule.on` with `all`: the events collected so far per definition
-- version and correlation key (a JSON array, one slot per filter, null while missing). The
-- routing transaction that fills the last slot starts the instance and deletes the row.
CREATE TABLE event_start_progress (
    definition_id       text        NOT NULL,
    definition_version  text        NOT NULL,
    corr_key            text        NOT NULL,
    events              jsonb       NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (definition_id, definition_version, corr_key)
);

-- Events that matched nothing, kept for eventProcessing.unmatchedRetention (0: not kept).
CREATE TABLE unmatched_events (
    event_key    text        PRIMARY KEY,
    event_type   text        NOT NULL,
    event        jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unmatched_events_by_type ON unmatched_events (event_type, received_at);

-- Messages that are not valid CloudEvents, from the database source or HTTP (RabbitMQ has its
-- own dead-letter queue), with the reason.
CREATE TABLE event_dead_letters (
    dead_letter_id  bigserial   PRIMARY KEY,
    source_kind     text        NOT NULL,
    reason          text        NOT NULL,
    payload         text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

-- The transactional outbox: emitted events (exchange 'business') and lifecycle events
-- ('system'), inserted with the snapshot that produced them; the relay of the partition's owner
-- publishes them in outbox_seq order and deletes them.
CREATE TABLE outbox (
    outbox_seq   bigserial   PRIMARY KEY,
    partition    integer     NOT NULL,
    instance_id  uuid        NOT NULL,
    exchange     text        NOT NULL CHECK (exchange IN ('business', 'system')),
    routing_key  text        NOT NULL,
    event_id     text        NOT NULL,
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_partition ON outbox (partition, outbox_seq);
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (3, 'events', 'a77efe93278a0204063fb6e90f8becc97145ccf88d8c09d8f8ae5518c01fa1f3', 0, false, '0.1.0');

-- V004__scheduler.sql
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
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (4, 'scheduler', 'acd9ab6b32345e0cecd3630724085d4b5218537dcb20f7c16313f1e68137c226', 0, false, '0.1.0');

-- V005__audit_log.sql
-- The audit log: one row per change asked of the API (registering or deleting a definition,
-- starting or commanding an instance, posting events), refused ones included: who asked
-- (principal and how they authenticated), what (action and target), in which namespace, when,
-- and the outcome (the HTTP status). Admins read it through GET /api/v1/audit-log.
CREATE TABLE audit_log (
    seq         bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    principal   text        NOT NULL,
    via         text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    namespace   text,
    status      integer     NOT NULL,
    outcome     text        NOT NULL,
    remote      text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, seq);
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (5, 'audit_log', '453493f0a01a89bb498f8fa86e7430217df565388b2279c7b641693eefeb3eb5', 0, false, '0.1.0');

-- V006__hot_query_indexes.sql
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
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (6, 'hot_query_indexes', '7dbbe3d64bc5085cd00e4e89c86d91025e3c6c84c1ee71e20b6c9c7230082958', 0, true, '0.1.0');

-- V007__subflows.sql
-- previous-release: incompatible
-- Subflows (`run.workflow`): a child instance knows its parent. Columns with defaults and an
-- index only, but the previous release must not run on this schema: a child it ran to its end
-- would never put that end in its parent's inbox, and the parent would wait forever.
--
-- parent_id: the instance whose `run.workflow` task created this one (NULL: top-level). The
-- child's id is derived from the parent's id and the task's execution key, so the parent's
-- commit inserts it once whatever the number of re-runs (ON CONFLICT DO NOTHING).
-- parent_awaits: the parent waits for the child's end (`await: true`): the child's terminal
-- commit puts an `io.workflow-orchestrator.subflow.ended.v1` event in the parent's inbox, in
-- the same transaction.
-- subflow_depth: how many parents it has (0: top-level), checked against
-- workflows.limits.subflowDepth when it starts a child.
ALTER TABLE workflow_instances
    ADD COLUMN parent_id      uuid,
    ADD COLUMN parent_awaits  boolean NOT NULL DEFAULT false,
    ADD COLUMN subflow_depth  integer NOT NULL DEFAULT 0 CHECK (subflow_depth >= 0);

-- The children of an instance (GET /workflow-instances/{id}, ?parentId=, the cancel cascade).
-- IF NOT EXISTS: an operator may build it beforehand with CREATE INDEX CONCURRENTLY.
CREATE INDEX IF NOT EXISTS workflow_instances_by_parent
    ON workflow_instances (parent_id, created_at)
    WHERE parent_id IS NOT NULL;
INSERT INTO schema_migrations (version, name, checksum, execution_ms, previous_release_compatible, release) VALUES (7, 'subflows', '4e042e8a858b28b7f733ad8fbce0a768d2f42b31cc228507f9582c685b733e3c', 0, false, '0.1.0');
COMMIT;
