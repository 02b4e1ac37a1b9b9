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
