"""What a commit of an instance writes: a pure function of its state and what is pending.

``plan_commit`` decides, without I/O, the ``InstanceSnapshot`` (the frozen record of
everything one commit writes) from the latest checkpoint, what the activation accumulated
since its last commit (``Pending``) and what the caller asks (``CommitAsk``: park, a status
decided outside the interpreter); ``DurableEffects`` hands the result to its snapshot sink,
and ``fault_instance`` uses the same function for a runtime fault. The rules:

- nothing to commit (no new checkpoint, history, outgoing event, status, park) gives None;
- the status is the asked one, else the checkpoint's; a terminal status (completed, faulted,
  cancelled) sets ``completed_at``, drops every subscription and timer and consumes the whole
  inbox; ``output`` is written for completed, ``error`` for faulted;
- subscriptions: a park's replace the stored ones; otherwise those of a listen that runs its
  iterations (``Pending.subscriptions``, so the router keeps delivering its events) replace
  them, and else the stored ones are dropped once the instance may hold some (it was waiting,
  or a listen that held them ended) and left alone when it cannot (a listen still holds them);
- timers: a park's replace the stored ones; tasks sleeping in memory (a short wait, a timeout
  beside a call) make theirs durable with every commit, so an instance that crashes while
  waiting is woken after a restart; otherwise the timers of the last park are consumed;
- ``listening`` (a listen running its iterations) is kept in the snapshot beside the state;
- ``note`` adds a ``workflow.<note>`` history row (a command's cancelled, suspended);
- the child instances started since the last commit (``run.workflow``) are created with it;
- the version is the last committed one plus one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sized
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.storage.instances import (
    ChildRow,
    HistoryRow,
    InstanceSnapshot,
    InstanceStatus,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
)

__all__ = [
    "ALL_INBOX",
    "PLAIN_COMMIT",
    "CommitAsk",
    "CommitTarget",
    "Pending",
    "nothing_to_commit",
    "plan_commit",
]

#: ``inbox_through`` of a terminal snapshot: every inbox row left is consumed.
ALL_INBOX = 2**62
# The interpreter's status words to the enum (a dict lookup: this runs for every commit).
_STATUS_OF = {str(status): status for status in InstanceStatus}


@attrs.frozen(kw_only=True)
class CommitTarget:
    """Which instance an activation commits, and under which lease epoch (None: the sink's
    current one)."""

    instance_id: uuid.UUID
    partition: int
    lease_epoch: int | None = None


@attrs.frozen(kw_only=True)
class Pending:
    """What an activation holds that its last commit does not.

    ``state`` is the latest checkpoint (``ExecutionState.to_json()``; None before the first)
    and ``status`` its status; ``changed`` says a checkpoint or a consumed event came since the
    last commit. ``sleepers`` are the timers of tasks sleeping in memory; ``inbox_through``
    the last inbox row handed to the interpreter. ``subscriptions_held``/``timers_held``: the
    last commit may have left subscriptions/timers stored (the instance parked or waited).
    ``children``: the child instances ``run.workflow`` tasks started (created with the commit).
    ``subscriptions``: those of a listen that consumed an event and goes on running (its
    iterations), to store when they are not stored yet; ``listening`` names that listen task
    while it runs (kept in the snapshot, so that the next activation keeps its subscriptions).
    """

    state: Mapping[str, Any] | None
    status: str
    changed: bool = False
    history: tuple[HistoryRow, ...] = ()
    outgoing: tuple[OutgoingEvent, ...] = ()
    sleepers: tuple[TimerRow, ...] = ()
    inbox_through: int = 0
    subscriptions_held: bool = False
    timers_held: bool = False
    children: tuple[ChildRow, ...] = ()
    subscriptions: tuple[SubscriptionRow, ...] | None = None
    listening: str = ""


@attrs.frozen(kw_only=True)
class CommitAsk:
    """What the caller asks of a commit beyond the pending state: ``status`` decided outside
    the interpreter (cancelled, suspended), a ``note`` for the history, or a park (``wake_at``
    with the ``subscriptions`` and ``timers`` the instance waits on)."""

    status: InstanceStatus | None = None
    note: str = ""
    wake_at: datetime | None = None
    subscriptions: tuple[SubscriptionRow, ...] | None = None
    timers: tuple[TimerRow, ...] | None = None


#: Commit what is pending, nothing more.
PLAIN_COMMIT = CommitAsk()


def _parse_time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def nothing_to_commit(changed: bool, history: Sized, outgoing: Sized, ask: CommitAsk) -> bool:
    """True when a commit would write nothing new: no checkpoint or consumed event since the
    last one (``changed``), no history or outgoing row, no status and no park asked. (Callers
    check this before collecting a ``Pending``, so an idle flush costs nothing.)"""
    return not (
        changed
        or history
        or outgoing
        or ask.status is not None
        or ask.subscriptions is not None
        or ask.timers is not None
    )


def plan_commit(
    target: CommitTarget,
    version: int,
    pending: Pending,
    ask: CommitAsk,
    now: datetime,
    *,
    state_text: str | None = None,
) -> InstanceSnapshot | None:
    """The snapshot to write after the committed ``version``, or None when there is nothing to
    commit (see the module docstring). ``state_text``, when given, is the checked JSON of
    ``pending.state`` (the writer then does not encode it again). Raises ``RuntimeError`` for a
    commit before the first checkpoint (the interpreter checkpoints before any effect, so that
    is a bug)."""
    if nothing_to_commit(pending.changed, pending.history, pending.outgoing, ask):
        return None
    state = pending.state
    if state is None:
        raise RuntimeError("commit before the first checkpoint")
    status = ask.status
    if status is None:
        status = _STATUS_OF.get(pending.status) or InstanceStatus(pending.status)
    terminal = status.terminal
    history = pending.history
    if ask.note:
        history += (HistoryRow(kind=f"workflow.{ask.note}", at=now),)
    subscriptions = ask.subscriptions
    if subscriptions is None and not terminal:
        subscriptions = pending.subscriptions
    if subscriptions is None and (pending.subscriptions_held or terminal):
        subscriptions = ()
    wrapper: dict[str, Any] = {
        "state": state,
        "wakeAt": ask.wake_at.isoformat() if ask.wake_at is not None else None,
    }
    if pending.listening and not terminal:
        wrapper["listening"] = pending.listening
    timers = ask.timers
    if timers is None and pending.sleepers and not terminal:
        timers = pending.sleepers
    elif timers is None and (pending.timers_held or terminal):
        timers = ()
    return InstanceSnapshot(
        instance_id=target.instance_id,
        partition=target.partition,
        snapshot_version=version + 1,
        status=status,
        snapshot=wrapper,
        output=state.get("output") if status is InstanceStatus.COMPLETED else None,
        error=state.get("error") if status is InstanceStatus.FAULTED else None,
        context=state.get("context") or {},
        started_at=_parse_time(state.get("startedAt") or ""),
        completed_at=now if terminal else None,
        history=history,
        lease_epoch=target.lease_epoch,
        subscriptions=subscriptions,
        inbox_through=ALL_INBOX if terminal else pending.inbox_through,
        outgoing=pending.outgoing,
        timers=timers,
        children=pending.children,
        encoded_state=state_text,
    )
