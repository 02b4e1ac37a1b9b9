"""What a commit of one instance writes: its snapshot and the rows that go with it.

An ``InstanceSnapshot`` is the durable state of one instance at a task boundary plus the rows
of the other tables written in the same transaction: history (``HistoryRow``), listen
subscriptions (``SubscriptionRow``), durable timers (``TimerRow``), outgoing events
(``OutgoingEvent``), child instances of ``run.workflow`` tasks (``ChildRow``) and how far the
inbox was consumed. Values are checked where they are
made (an unknown status or timer kind fails here, not in the whole batch's commit).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs

from workflow_orchestrator.storage.instances._status import InstanceStatus

__all__ = [
    "ChildRow",
    "HistoryRow",
    "InstanceSnapshot",
    "OutgoingEvent",
    "SubscriptionRow",
    "TimerRow",
]


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class HistoryRow:
    """A history entry to write with a snapshot; its ``seq`` is assigned at commit."""

    kind: str
    task_ref: str = ""
    at: datetime = attrs.field(factory=_now)
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SubscriptionRow:
    """One filter an instance waits on (see ``event_subscriptions`` in migration V003)."""

    filter_index: int
    task_ref: str
    event_type: str  # '' = any type
    shape_id: int  # 0 = no correlation
    corr_key: str  # '' = any correlation value
    attributes: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TimerRow:
    """One pending timer of a parked instance (see ``workflow_timers`` in migration V004)."""

    timer_key: str
    kind: str = attrs.field(validator=attrs.validators.in_(("wait", "timeout", "retry", "other")))
    due_at: datetime


@attrs.frozen(kw_only=True)
class OutgoingEvent:
    """An event to publish after the commit: ``destination`` is ``business`` (emitted) or
    ``system`` (lifecycle) for the outbox relay, or ``events`` for the database event source;
    ``body`` is the structured-mode CloudEvent JSON text."""

    destination: str = attrs.field(validator=attrs.validators.in_(("business", "system", "events")))
    routing_key: str
    event_id: str
    body: str


@attrs.frozen(kw_only=True)
class ChildRow:
    """A child instance a ``run.workflow`` task starts, created (pending) with the parent's
    commit unless ``child_id`` exists already (a re-run of the task after a crash): its id is
    derived from the parent's and the task's, so it is created once. ``awaited``: the parent
    waits for its end; ``depth``: its number of parents (see migration V007)."""

    child_id: uuid.UUID
    partition: int = attrs.field(validator=attrs.validators.ge(0))
    definition_id: str
    definition_version: str
    input: Any
    awaited: bool = True
    depth: int = attrs.field(default=1, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class InstanceSnapshot:
    """The durable state of one instance at a task boundary.

    ``snapshot_version`` must grow with every write of the instance. ``output``, ``error`` and
    ``context`` replace the stored values (None output/error store SQL NULL); ``started_at``
    and ``completed_at`` are written only when not None. ``lease_epoch`` is the epoch under
    which the caller's actor was activated: pass it, so that an actor from before a lease
    change is fenced even if this replica holds the partition again; when None the writer's
    current epoch for ``partition`` is used.

    Event processing (written only when the snapshot is applied): ``subscriptions`` replaces
    the instance's listen subscriptions when not None (``()`` removes them); inbox rows up to
    ``inbox_through`` are deleted (consumed); ``outgoing`` events go to the outbox (or the
    ``events`` table), in order. ``timers`` likewise replaces the instance's durable timers
    when not None. ``children`` are created (pending) when the snapshot is applied, each
    unless its id exists already.
    """

    instance_id: uuid.UUID
    partition: int = attrs.field(validator=attrs.validators.ge(0))
    snapshot_version: int = attrs.field(validator=attrs.validators.ge(1))
    status: InstanceStatus = attrs.field(converter=InstanceStatus)
    snapshot: dict[str, Any]
    output: Any = None
    error: Any = None
    context: Any = attrs.field(factory=dict)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    history: tuple[HistoryRow, ...] = ()
    lease_epoch: int | None = None
    subscriptions: tuple[SubscriptionRow, ...] | None = None
    inbox_through: int = 0
    outgoing: tuple[OutgoingEvent, ...] = ()
    timers: tuple[TimerRow, ...] | None = None
    children: tuple[ChildRow, ...] = ()
    # The compact JSON of snapshot["state"], when its author encoded (and checked) it already
    # with storage.storable_json: the writer reuses it instead of encoding the state again.
    encoded_state: str | None = attrs.field(default=None, eq=False, repr=False)
