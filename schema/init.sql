-- Generated from workflow_orchestrator/storage/migrations by `make schema`; do not edit.
-- Apply with: psql -v ON_ERROR_STOP=1 -f schema/init.sql <database>
BEGIN;
CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer     PRIMARY KEY,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  integer     NOT NULL
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
INSERT INTO schema_migrations (version, name, checksum, execution_ms) VALUES (1, 'initial_schema', '9e33d65471092599904655fa288f7a325a09a102ff2b76bcdc01242d6a292a73', 0);

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
INSERT INTO schema_migrations (version, name, checksum, execution_ms) VALUES (2, 'instance_history', '03662a56d42700b1af9378ffeb0ca3f27223cd3fab379dc38108e78ec3831b09', 0);
COMMIT;
