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
