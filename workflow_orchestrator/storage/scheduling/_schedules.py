"""Schedules in the database: the definitions with a ``cron``/``every``/``after`` schedule, their
progress (``schedule_state``), and the transaction that starts a definition's due ticks.

A tick's instance carries the idempotency key ``schedule:<definition>:<version>:<tick>``, so a
tick started twice (two leaders, a retry after a failover) creates one instance. The tick
transaction first checks the caller's fence (the leader's epoch still holds the lease), so a
deposed leader writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage.events._wake import notify_wake
from workflow_orchestrator.storage.instances import (
    TERMINAL_STATUSES,
    InstanceRecord,
    InstanceStart,
    insert_started_instances,
)
from workflow_orchestrator.storage.scheduling._leader_leases import Fence

__all__ = [
    "ScheduleRecord",
    "TickCommit",
    "commit_ticks",
    "load_schedules",
    "tick_idempotency_key",
]

_SCHEDULES_SQL = """
SELECT d.definition_id, d.version, d.created_at, s.last_tick, s.buffered_tick,
       s.last_instance_id, w.status AS last_status, w.completed_at AS last_completed_at
FROM (
    SELECT DISTINCT ON (definition_id) definition_id, version, created_at, document
    FROM workflow_definitions WHERE deleted_at IS NULL
    ORDER BY definition_id, created_at DESC, version DESC
) d
LEFT JOIN schedule_state s
  ON s.definition_id = d.definition_id AND s.definition_version = d.version
LEFT JOIN workflow_instances w ON w.instance_id = s.last_instance_id
WHERE d.document -> 'schedule' ?| ARRAY['every', 'cron', 'after']
ORDER BY d.definition_id
"""

_STATE_SQL = """
INSERT INTO schedule_state AS s (definition_id, definition_version, last_tick, buffered_tick,
                                 last_instance_id, leader_epoch, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (definition_id, definition_version) DO UPDATE
SET last_tick = EXCLUDED.last_tick, buffered_tick = EXCLUDED.buffered_tick,
    last_instance_id = coalesce(EXCLUDED.last_instance_id, s.last_instance_id),
    leader_epoch = EXCLUDED.leader_epoch, updated_at = now()
"""


def tick_idempotency_key(definition_id: str, version: str, tick: datetime) -> str:
    """The start key of one tick: the same tick never starts two instances."""
    return f"schedule:{definition_id}:{version}:{tick.isoformat()}"


@attrs.frozen(kw_only=True)
class ScheduleRecord:
    """A definition version with a schedule, and its progress."""

    definition_id: str
    version: str
    registered_at: datetime
    last_tick: datetime | None
    buffered_tick: datetime | None
    last_instance_id: uuid.UUID | None
    last_status: str | None
    last_completed_at: datetime | None

    @property
    def previous_running(self) -> bool:
        """Whether the instance of the last started tick has not ended yet."""
        return self.last_status is not None and self.last_status not in TERMINAL_STATUSES


@attrs.frozen(kw_only=True)
class TickCommit:
    """What ``commit_ticks`` did: the instances it created (their records), whether the
    caller was fenced (then nothing was written), and the tick keys that existed already."""

    created: tuple[InstanceRecord, ...]
    fenced: bool
    existing: int


async def load_schedules(database: Database) -> tuple[ScheduleRecord, ...]:
    """The latest live version of every definition with a cron/every/after schedule."""
    rows = await database.fetch(_SCHEDULES_SQL)
    return tuple(
        ScheduleRecord(
            definition_id=r["definition_id"],
            version=r["version"],
            registered_at=r["created_at"],
            last_tick=r["last_tick"],
            buffered_tick=r["buffered_tick"],
            last_instance_id=r["last_instance_id"],
            last_status=r["last_status"],
            last_completed_at=r["last_completed_at"],
        )
        for r in rows
    )


async def commit_ticks(
    database: Database,
    schedule: ScheduleRecord,
    *,
    starts: Sequence[datetime],
    last_tick: datetime | None,
    buffered_tick: datetime | None,
    fence: Fence | None,
    epoch: int,
    local_partitions: Collection[int],
    partition_count: int = 64,
) -> TickCommit:
    """Start one instance per tick of ``starts`` and record the schedule's progress, in one
    transaction that begins with ``fence`` (when given); one crossing. Instances of other
    replicas' partitions are announced on ``workflow_wake``."""
    ids = [uuid.uuid4() for _ in starts]
    keys = [tick_idempotency_key(schedule.definition_id, schedule.version, t) for t in starts]
    local = set(local_partitions)

    async def work(connection: Connection) -> TickCommit:
        async with connection.transaction():
            if fence is not None and not await fence(connection):
                return TickCommit(created=(), fenced=True, existing=0)
            created = await insert_started_instances(
                connection,
                [
                    (
                        instance_id,
                        InstanceStart(
                            definition_id=schedule.definition_id,
                            definition_version=schedule.version,
                            input={},
                            idempotency_key=key,
                        ),
                    )
                    for instance_id, key in zip(ids, keys, strict=True)
                ],
                partition_count,
            )
            last_instance = None
            if keys:
                last_instance = await connection.fetchval(
                    "SELECT instance_id FROM workflow_instances WHERE idempotency_key = $1",
                    keys[-1],
                )
            await connection.execute(
                _STATE_SQL,
                schedule.definition_id,
                schedule.version,
                last_tick,
                buffered_tick,
                last_instance,
                epoch,
            )
            await notify_wake(
                connection, [str(r.instance_id) for r in created if r.partition not in local]
            )
        return TickCommit(created=tuple(created), fenced=False, existing=len(starts) - len(created))

    return await database.run(work)
