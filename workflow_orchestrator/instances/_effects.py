"""The durable effects of one running instance: how the interpreter's side effects happen.

When a snapshot becomes durable (the durability contract of architecture.md):

- ``checkpoint`` (every task boundary) only remembers the latest state; the state is written
  through the group-commit ``SnapshotWriter`` *before the next externally visible effect*
  (an HTTP call, an emitted event, a process, a wait), at the first task boundary *after* one
  (so a task that called out is committed as completed before anything else runs), and when
  the run ends. A task recorded as completed in a committed snapshot is never executed again;
  tasks without side effects that ran after the last commit simply run again after a crash,
  which nobody can observe. This keeps a run of pure tasks at one commit instead of one per
  task.
- Lifecycle events become history rows written in the same transaction as the snapshot.
- Outbound HTTP calls carry the interpreter's idempotency key (stable for a task attempt).

Waiting: a ``wait`` (or retry delay) shorter than ``park_after`` sleeps in place. A longer one,
or a ``listen``, *parks* the instance: the waiting snapshot is committed with one
``workflow_timers`` row per pending timer (this wait's, and those of tasks sleeping beside it,
such as a ``timeout``) and the run unwinds with ``Parked``; the scheduler's timer service wakes
it at the earliest due time (or the router on an event) from that snapshot, whose first commit
deletes the timers. A timeout's timer never parks by itself: the work it guards parks, with the
timer among its rows. Memory then grows with running instances, not waiting ones.

Events: a ``listen`` first takes the events delivered to the instance's inbox (loaded with the
activation, oldest first); when none is left it parks, committing its subscriptions (see
``_listening``) with the waiting snapshot. The router then puts matching events in the inbox
and re-activates the instance. The snapshot after an event was handed to the interpreter
deletes the inbox rows up to it (the interpreter records consumed and rejected event keys in the
same state, so a redelivered row is never consumed twice). Emitted events and lifecycle events
become outgoing rows (outbox or ``events`` table) in the same transaction as the snapshot.
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
import trio
import trio.lowlevel

from workflow_orchestrator.dsl import CloudEvent, ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import (
    ExecutionState,
    HttpRequest,
    HttpResponse,
    ListenRequest,
    ProcessRequest,
    ProcessResult,
    SubflowRequest,
)
from workflow_orchestrator.instances._listening import outgoing_event, subscription_rows
from workflow_orchestrator.storage import (
    HistoryRow,
    InboxEvent,
    InstanceSnapshot,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
    fetch_retained_events,
)

if TYPE_CHECKING:
    from workflow_orchestrator.instances._runtime import InstanceRuntime

__all__ = ["DurableEffects", "Parked", "secret_from_environment"]

SECRET_PREFIX = "WORKFLOW_SECRET_"
_NOT_NAME = re.compile(r"[^A-Za-z0-9]")
# History keeps the lifecycle without the (possibly large) data each task produced.
_HISTORY_DROPS = ("output", "workflow", "input")
_ALL_INBOX = 2**62  # inbox_through for a terminal snapshot: everything left is dropped


class Parked(Exception):
    """The instance waits for a time (``wake_at``) or an event; its snapshot is committed."""

    def __init__(self, wake_at: datetime | None) -> None:
        super().__init__("instance parked")
        self.wake_at = wake_at


def secret_from_environment(name: str) -> Any:
    """``$secrets.<name>`` from ``WORKFLOW_SECRET_<NAME>`` (JSON when it parses, else text)."""
    import json

    raw = os.environ.get(SECRET_PREFIX + _NOT_NAME.sub("_", name).upper())
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _history_row(event: CloudEvent) -> HistoryRow:
    attributes = event.attributes
    kind = (
        str(attributes.get("type", "")).removeprefix("io.serverlessworkflow.").removesuffix(".v1")
    )
    data = attributes.get("data")
    details = (
        {k: v for k, v in data.items() if k not in _HISTORY_DROPS} if isinstance(data, dict) else {}
    )
    at = attributes.get("time")
    moment = datetime.fromisoformat(at) if isinstance(at, str) and at else datetime.now(UTC)
    task_ref = details.get("task") if isinstance(details.get("task"), str) else ""
    return HistoryRow(kind=kind, task_ref=task_ref or "", at=moment, details=details)


def _parse_time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@attrs.define(eq=False)
class DurableEffects:
    """Effects of one activation of one instance (see the module docstring)."""

    runtime: InstanceRuntime
    instance_id: uuid.UUID
    partition: int
    lease_epoch: int | None
    version: int
    park_after: float
    on_commit: Callable[[str], None]
    _latest: dict[str, Any] | None = attrs.field(default=None, init=False)
    _dirty: bool = attrs.field(default=False, init=False)
    _status: str = attrs.field(default="pending", init=False)
    _history: list[HistoryRow] = attrs.field(factory=list, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _sleepers: list[TimerRow] = attrs.field(factory=list, init=False)
    # True while committed durable timers may exist (the instance was parked): the next commit
    # removes them unless it parks with new ones.
    _timed: bool = attrs.field(default=False, init=False)
    _effects_since_commit: bool = attrs.field(default=False, init=False)
    _outgoing: list[OutgoingEvent] = attrs.field(factory=list, init=False)
    _inbox: list[InboxEvent] = attrs.field(factory=list, init=False)
    _inbox_through: int = attrs.field(default=0, init=False)
    # True while committed subscriptions may exist (the instance was waiting): the next commit
    # removes them unless it parks with new ones.
    _subscribed: bool = attrs.field(default=False, init=False)
    _retained_read: set[str] = attrs.field(factory=set, init=False)
    _retained_events: list[dict[str, Any]] = attrs.field(factory=list, init=False)

    # -- time and identity ----------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC)

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def random(self) -> float:
        return random.random()

    # -- durability -----------------------------------------------------------------------

    def start_from(
        self,
        state: ExecutionState,
        *,
        inbox: tuple[InboxEvent, ...] = (),
        waiting: bool = False,
        resumed: bool = False,
    ) -> None:
        """Take ``state`` (new, or loaded from the last committed snapshot) as the latest
        checkpoint, without marking it dirty.

        A resumed run reaches its first effect before its first checkpoint (the interpreter
        checkpoints at task boundaries, and a snapshot is committed just before an effect, in
        the middle of that task). The flush before that effect then commits the restored state
        again, with the lifecycle events the re-run queued since.
        """
        self._latest = state.to_json()
        self._status = state.status
        self._inbox = list(inbox)
        self._subscribed = waiting or bool(inbox)
        self._timed = waiting or resumed  # a resumed instance may have parked before

    def add_lifecycle_event(self, event: CloudEvent) -> None:
        self._history.append(_history_row(event))
        row = self.runtime.event_options.lifecycle_outgoing(event)
        if row is not None:
            self._outgoing.append(row)

    async def checkpoint(self, state: ExecutionState) -> None:
        self._latest = state.to_json()
        self._status = state.status
        self._dirty = True
        if self._effects_since_commit:
            # A task that called out has completed: commit now, so that it never runs again.
            await self.flush()

    async def flush(
        self,
        *,
        status: str | None = None,
        wake_at: datetime | None = None,
        extra: str = "",
        subscriptions: tuple[SubscriptionRow, ...] | None = None,
        timers: tuple[TimerRow, ...] | None = None,
    ) -> None:
        """Commit the latest checkpoint (and the history since the last commit); park with
        ``subscriptions`` and ``timers`` when given."""
        if not (
            self._dirty
            or self._history
            or self._outgoing
            or status is not None
            or subscriptions is not None
            or timers is not None
        ):
            return
        state = self._latest
        if state is None:
            raise RuntimeError("flush before the first checkpoint")  # the interpreter's contract
        final = status or self._status
        self.version += 1
        history = tuple(self._history)
        if extra:
            history += (HistoryRow(kind=f"workflow.{extra}", at=self.now()),)
        terminal = final in ("completed", "faulted", "cancelled")
        if subscriptions is None and (self._subscribed or terminal):
            subscriptions = ()  # listening is over: drop what a park committed
        if timers is None and self._sleepers and not terminal:
            # Tasks sleep in memory (a short wait, a timeout beside a call): their timers are
            # durable too, so an instance that crashes while waiting is woken after a restart.
            timers = tuple(self._sleepers)
        elif timers is None and (self._timed or terminal):
            timers = ()  # awake: the timers of the last park are consumed
        inbox_through = _ALL_INBOX if terminal else self._inbox_through
        snapshot = InstanceSnapshot(
            instance_id=self.instance_id,
            partition=self.partition,
            snapshot_version=self.version,
            status=final,
            snapshot={"state": state, "wakeAt": wake_at.isoformat() if wake_at else None},
            output=state.get("output") if final == "completed" else None,
            error=state.get("error") if final == "faulted" else None,
            context=state.get("context") or {},
            started_at=_parse_time(state.get("startedAt") or ""),
            completed_at=self.now() if final in ("completed", "faulted", "cancelled") else None,
            history=history,
            lease_epoch=self.lease_epoch,
            subscriptions=subscriptions,
            inbox_through=inbox_through,
            outgoing=tuple(self._outgoing),
            timers=timers,
        )
        self._outgoing = []
        if subscriptions is not None:
            self._subscribed = bool(subscriptions)
        if timers is not None:
            self._timed = bool(timers)
        self._history = []
        self._dirty = False
        self._effects_since_commit = False
        await self.runtime.writer.write(snapshot)
        self.on_commit(final)

    def _park_timers(self, own: TimerRow | None) -> tuple[TimerRow, ...]:
        """The durable timers of a park: this wait's and those other tasks sleep on."""
        return (*self._sleepers, *([own] if own is not None else []))

    @staticmethod
    def _wake_time(timers: tuple[TimerRow, ...]) -> datetime | None:
        return min((t.due_at for t in timers), default=None)

    async def commit_final(self, status: str, state: ExecutionState) -> None:
        """Write a status decided outside the interpreter (cancelled, suspended) on top of
        the last checkpoint: whatever ran since then runs again on resume."""
        self._latest = dict(self._latest) if self._latest is not None else state.to_json()
        self._latest["status"] = status
        await self.flush(status=status, extra=status)

    # -- effects --------------------------------------------------------------------------

    async def sleep_until(self, when: datetime, *, key: str = "", kind: str = "wait") -> None:
        delay = (when - self.now()).total_seconds()
        if delay <= 0:
            return
        timer = TimerRow(timer_key=key or f"timer@{when.isoformat()}", kind=kind, due_at=when)
        # A timeout's timer runs beside the work it guards: it never parks the instance itself
        # (the guarded work parks when it waits, with this timer among its durable timers).
        if kind != "timeout" and delay > self.park_after and self._in_flight == 0:
            timers = self._park_timers(timer)
            wake_at = self._wake_time(timers)
            await self.flush(wake_at=wake_at, timers=timers)
            raise Parked(wake_at)
        self._sleepers.append(timer)  # before any await: a park meanwhile must include it
        try:
            await self.flush()
            await trio.sleep(max((when - self.now()).total_seconds(), 0.0))
        finally:
            self._sleepers.remove(timer)

    async def http(self, request: HttpRequest) -> HttpResponse:
        await self.flush()
        self._in_flight += 1
        try:
            return await self.runtime.http_client.http(request)
        finally:
            self._in_flight -= 1
            self._effects_since_commit = True

    async def emit(self, event: CloudEvent) -> None:
        """Commit the event as an outgoing row (outbox or ``events`` table) with the snapshot;
        its id is stable per task execution, so a re-run after a crash emits the same id."""
        data = event.to_json()
        self._history.append(
            HistoryRow(kind="event.emitted", task_ref="", at=self.now(), details=data)
        )
        self._outgoing.append(outgoing_event(event, self.runtime.event_options.emit_destination))
        self._dirty = True
        await self.flush()

    async def wait_event(self, request: ListenRequest) -> CloudEvent:
        """The next inbox event not excluded; else park with the request's subscriptions."""
        while self._inbox:
            item = self._inbox.pop(0)
            self._inbox_through = max(self._inbox_through, item.seq)
            event = CloudEvent(attributes=item.event)
            if event.key not in request.exclude:
                self._dirty = True
                return event
        retained = await self._retained(request)
        if retained is not None:
            return retained
        for _ in range(3):
            await trio.lowlevel.checkpoint()  # let a timeout's timer task start sleeping first
        timers = self._park_timers(None)
        wake_at = self._wake_time(timers)
        rows = await subscription_rows(request, self.runtime.shapes)
        await self.flush(wake_at=wake_at, subscriptions=rows, timers=timers)
        raise Parked(wake_at)

    async def _retained(self, request: ListenRequest) -> CloudEvent | None:
        """A retained unmatched event for this listen (``eventProcessing.unmatchedRetention``),
        read once per listen task and activation; None when there is none left."""
        keep = self.runtime.unmatched_retention
        if keep <= 0:
            return None
        if request.task_ref not in self._retained_read:
            self._retained_read.add(request.task_ref)
            types = {str(f.attributes.get("type", "")) for f in await request.subscriptions()}
            self._retained_events.extend(
                await fetch_retained_events(self.runtime.database, types, keep)
            )
        while self._retained_events:
            event = CloudEvent(attributes=self._retained_events.pop(0))
            if event.key not in request.exclude:
                self._dirty = True
                return event
        return None

    async def run_subflow(self, request: SubflowRequest) -> Any:
        raise WorkflowError(
            Problem.standard(
                ErrorType.CONFIGURATION,
                detail=f"run.workflow ({request.namespace}/{request.name}/{request.version}) is "
                "not supported by the durable runtime yet; call the workflow over HTTP instead",
            )
        )

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        await self.flush()
        self._in_flight += 1
        try:
            return await self.runtime.run_process(request)
        finally:
            self._in_flight -= 1
            self._effects_since_commit = True

    async def get_secret(self, name: str) -> Any:
        value = secret_from_environment(name)
        if value is None:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.AUTHORIZATION,
                    detail=f"secret {name!r} is not defined; set the environment variable "
                    f"{SECRET_PREFIX}{_NOT_NAME.sub('_', name).upper()} on the service",
                )
            )
        return value
