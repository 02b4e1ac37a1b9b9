"""Frozen snapshots of the supervision tree, for ``statistics()`` and ``GET /supervisor``.

Large child lists are summarised (a count per state) and paged with ``offset``/``limit``;
``depth`` bounds how far down children are expanded, so a tree of 100,000 actors can be
inspected without materialising it.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import attrs
import trio

from workflow_orchestrator.actors._lifecycle import FailureInfo

if TYPE_CHECKING:
    from workflow_orchestrator.actors._record import ChildRecord
    from workflow_orchestrator.actors._supervisor import Supervisor


@attrs.frozen(kw_only=True)
class ChildSnapshot:
    """One node of the tree at one moment.

    ``kind`` is ``actor``, ``service`` or ``supervisor``; ``state`` a ``LifecycleState``
    value. Mailbox fields are None for non-actors; ``strategy`` is None for non-supervisors.
    ``child_count`` and ``child_states`` always cover all children; ``children`` holds the
    page ``[children_offset, children_offset + len(children))`` when depth allowed it.
    """

    path: str
    name: str
    kind: str
    state: str
    restart_count: int
    last_failure: FailureInfo | None
    mailbox_depth: int | None
    mailbox_capacity: int | None
    uptime_seconds: float
    strategy: str | None = None
    child_count: int = 0
    child_states: dict[str, int] = attrs.field(factory=dict)
    children: tuple[ChildSnapshot, ...] = ()
    children_offset: int = 0


def snapshot_of(
    record: ChildRecord,
    *,
    depth: int | None,
    offset: int = 0,
    limit: int | None = None,
) -> ChildSnapshot:
    """Snapshot one child; nested supervisors include their children.

    ``depth`` 0 gives the node and its child summary only; None expands everything. Paging
    (``offset``/``limit``) applies to this node's children; deeper levels show at most
    ``limit`` children each, from the first.
    """
    depth_, capacity = record.mailbox_figures()
    return _build(
        path=record.path,
        name=record.name,
        kind=record.kind,
        state=record.state.value,
        restart_count=record.restart_count,
        last_failure=record.last_failure,
        mailbox_depth=depth_,
        mailbox_capacity=capacity,
        started_at=record.started_at,
        supervisor=record.nested,
        depth=depth,
        offset=offset,
        limit=limit,
    )


def snapshot_of_supervisor(
    supervisor: Supervisor, *, depth: int | None, offset: int = 0, limit: int | None = None
) -> ChildSnapshot:
    """Snapshot a supervisor that is not anyone's child (the guardian)."""
    return _build(
        path=supervisor.path,
        name=supervisor.spec.name,
        kind="supervisor",
        state=supervisor.state.value,
        restart_count=0,
        last_failure=None,
        mailbox_depth=None,
        mailbox_capacity=None,
        started_at=supervisor.started_at,
        supervisor=supervisor,
        depth=depth,
        offset=offset,
        limit=limit,
    )


def _build(
    *,
    path: str,
    name: str,
    kind: str,
    state: str,
    restart_count: int,
    last_failure: FailureInfo | None,
    mailbox_depth: int | None,
    mailbox_capacity: int | None,
    started_at: float,
    supervisor: Supervisor | None,
    depth: int | None,
    offset: int,
    limit: int | None,
) -> ChildSnapshot:
    strategy = None
    child_count = 0
    states: dict[str, int] = {}
    children: tuple[ChildSnapshot, ...] = ()
    if supervisor is not None:
        strategy = supervisor.spec.strategy.value
        records = supervisor.child_records()
        child_count = len(records)
        states = dict(collections.Counter(child.state.value for child in records))
        if depth is None or depth > 0:
            page = records[offset : None if limit is None else offset + limit]
            below = None if depth is None else depth - 1
            children = tuple(snapshot_of(child, depth=below, limit=limit) for child in page)
    return ChildSnapshot(
        path=path,
        name=name,
        kind=kind,
        state=state,
        restart_count=restart_count,
        last_failure=last_failure,
        mailbox_depth=mailbox_depth,
        mailbox_capacity=mailbox_capacity,
        uptime_seconds=max(0.0, trio.current_time() - started_at),
        strategy=strategy,
        child_count=child_count,
        child_states=states,
        children=children,
        children_offset=offset if children else 0,
    )
