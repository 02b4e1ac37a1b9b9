"""Retention: finished instances past their age are deleted in batches by the elected sweeper,
with their history; young, unfinished and kept-for-ever ones stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trio

from tests.integration.storage.helpers import open_storage, sample_document
from workflow_orchestrator.config import RetentionSettings
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.scheduler import LeadershipLost, RetentionSweeper
from workflow_orchestrator.scheduler._leader import Leadership
from workflow_orchestrator.storage import (
    AuditEntry,
    Database,
    append_audit_entries,
    list_audit_entries,
)
from workflow_orchestrator.storage.definitions import register_definition
from workflow_orchestrator.storage.instances import InstanceStatus, create_instance, set_status

pytestmark = pytest.mark.integration


async def register(database: Database, name: str, retention: object = None) -> None:
    """A definition, with ``document.metadata.retention`` when given."""
    document = sample_document(name)
    if retention is not None:
        document["document"]["metadata"] = {"retention": retention}
    await register_definition(
        database,
        definition_id=name,
        version="1.0.0",
        namespace="shop",
        name=name,
        document=document,
        source_text=repr(document),
    )


async def instance(database: Database, name: str, status: str, days_old: float) -> uuid.UUID:
    """An instance of ``name`` last updated ``days_old`` days ago, ``status`` (a finished one
    with its history row)."""
    record, _ = await create_instance(
        database,
        definition_id=name,
        definition_version="1.0.0",
        input={},
        business_key=None,
        idempotency_key=None,
    )
    if status == "cancelled":
        await set_status(
            database,
            record.instance_id,
            InstanceStatus.CANCELLED,
            allowed_from=[InstanceStatus.PENDING],
            history_kind="workflow.cancelled",
        )
    else:
        await database.execute(
            "UPDATE workflow_instances SET status = $2 WHERE instance_id = $1",
            record.instance_id,
            status,
        )
    await database.execute(
        "UPDATE workflow_instances SET updated_at = now() - make_interval(days => $2) "
        "WHERE instance_id = $1",
        record.instance_id,
        days_old,
    )
    return record.instance_id


async def remaining(database: Database) -> set[uuid.UUID]:
    return {
        r["instance_id"] for r in await database.fetch("SELECT instance_id FROM workflow_instances")
    }


async def test_the_sweep_deletes_expired_finished_instances_in_batches(database_url: str) -> None:
    """Finished instances older than retention.completedInstances (or their definition's
    document.metadata.retention) go with their history, batch by batch; young ones, running
    ones and those kept for ever stay, and the counter counts the rows by table."""
    metrics = ServiceMetrics()
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            await register(database, "plain")
            await register(database, "weekly", "7d")
            await register(database, "forever", 0)
            await register(database, "sloppy", "soon")
            doomed = {
                await instance(database, "plain", "completed", 40),
                await instance(database, "plain", "cancelled", 31),
                await instance(database, "plain", "faulted", 35),
                await instance(database, "weekly", "completed", 8),
            }
            kept = {
                await instance(database, "plain", "completed", 29),
                await instance(database, "plain", "running", 400),
                await instance(database, "plain", "waiting", 400),
                await instance(database, "weekly", "cancelled", 6),
                await instance(database, "forever", "completed", 400),
                await instance(database, "sloppy", "completed", 20),
            }
            sweeper = RetentionSweeper(
                database=database,
                settings=RetentionSettings(completed_instances=30 * 86_400.0, batch_size=3),
                candidate_id="sweeper-1",
                lease_ttl=30.0,
                metrics=metrics,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(sweeper.leader.run)
                leadership = await sweeper.leader.wait_leadership()
                deleted = await sweeper.sweep(leadership)
                again = await sweeper.sweep(leadership)
                nursery.cancel_scope.cancel()
            left = await remaining(database)
            history = await database.fetchval(
                "SELECT count(*) FROM workflow_instance_history WHERE instance_id = ANY($1)",
                list(doomed),
            )
    assert left == kept
    assert deleted == {
        "workflow_instances": 4,
        "workflow_instance_history": 1,
        "instance_inbox": 0,
        "event_subscriptions": 0,
        "workflow_timers": 0,
    }
    assert again.get("workflow_instances", 0) == 0 and history == 0
    text = metrics.exposition().decode()
    assert 'workflow_retention_deleted_total{table="workflow_instances"} 4.0' in text
    assert 'workflow_retention_deleted_total{table="workflow_instance_history"} 1.0' in text


async def test_a_fenced_sweeper_deletes_nothing(database_url: str) -> None:
    """A sweeper whose leadership epoch is no longer current is refused before it deletes."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            await register(database, "plain")
            old = await instance(database, "plain", "completed", 40)
            sweeper = RetentionSweeper(
                database=database,
                settings=RetentionSettings(),
                candidate_id="sweeper-2",
                lease_ttl=30.0,
            )
            stale = Leadership(
                role="retention", leader_id="sweeper-2", epoch=99, acquired_at=datetime.now()
            )
            with pytest.raises(LeadershipLost, match="'sweeper-2' no longer leads 'retention'"):
                await sweeper.sweep(stale)
            left = await remaining(database)
    assert left == {old}


async def test_the_sweep_deletes_audit_rows_older_than_their_retention(database_url: str) -> None:
    """security.audit.retention: older audit-log rows go in batches, newer ones stay."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            now = datetime.now(UTC)
            await append_audit_entries(
                database,
                [
                    AuditEntry(
                        at=now - timedelta(days=days),
                        principal="ops",
                        via="api-key",
                        action="instance.cancel",
                        target=f"t{days}",
                        namespace="shop",
                        status=200,
                        outcome="succeeded",
                    )
                    for days in (1, 2, 91, 92, 95, 200, 300)
                ],
            )
            sweeper = RetentionSweeper(
                database=database,
                settings=RetentionSettings(batch_size=2),
                candidate_id="sweeper-audit",
                lease_ttl=30.0,
                audit_retention=90 * 86_400.0,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(sweeper.leader.run)
                deleted = await sweeper.sweep(await sweeper.leader.wait_leadership())
                nursery.cancel_scope.cancel()
            left = await list_audit_entries(database)
    assert deleted["audit_log"] == 5
    assert sorted(e.target for e in left.items) == ["t1", "t2"]
