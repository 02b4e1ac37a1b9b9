"""The durable effects of one running instance: how the interpreter's side effects happen.

When a snapshot becomes durable (the durability contract of architecture.md):

- ``checkpoint`` (every task boundary) only remembers the latest state; the state is written
  through the ports' snapshot sink (the group-commit ``SnapshotWriter`` in the service), as
  ``plan_commit`` decides, *before the next externally visible effect*
  (an HTTP call, an emitted event, a process, a wait), at the first task boundary *after* one
  (so a task that called out is committed as completed before anything else runs), and when
  the run ends. A task recorded as completed in a committed snapshot is never executed again;
  tasks without side effects that ran after the last commit simply run again after a crash,
  which nobody can observe. This keeps a run of pure tasks at one commit instead of one per
  task; a long run of them still commits every ``commit_every`` checkpoints
  (``workflows.limits.commitEvery``), so what it accumulates (history rows) stays bounded and a
  crash loses little.
- A state larger than ``max_state_size`` (``workflows.limits.stateSize``) is never written: a
  running instance is faulted through the interpreter, and its final state is committed
  without its data (see ``_state_size``).
- Lifecycle events become history rows written in the same transaction as the snapshot.
- Outbound HTTP calls carry the interpreter's idempotency key (stable for a task attempt).

Waiting: a ``wait`` (or retry delay) shorter than ``park_after`` sleeps in place. A longer one,
or a ``listen``, *parks* the instance: the waiting snapshot is committed with one
``workflow_timers`` row per pending timer (this wait's, and those of tasks sleeping beside it,
such as a ``timeout``) and the run unwinds with ``Parked``; the scheduler's timer service wakes
it at the earliest due time (or the router on an event) from that snapshot, whose first commit
deletes the timers. A timeout's timer never parks by itself: the work it guards parks, with the
timer among its rows. Memory then grows with running instances, not waiting ones.

A commit holding a value PostgreSQL cannot store (``SnapshotUnstorable``: a NUL character,
NaN, nesting too deep...) is not retried: the instance is committed faulted from its last
committed state, with an error naming the value and where it is (``_unstorable``), and the
run unwinds with ``CommittedWithout``. Other instances of the same batch are not affected.

Secrets: ``get_secret`` reads through the ports' store when the policy grants the secret to
the definition's namespace (an authorization error naming ``security.secrets.grants``
otherwise), and remembers the value: every commit after that redacts it (``SecretRedactor``)
from the state, output, error, history and outgoing events it writes, so no stored row holds
it; the run itself keeps the real value in memory. A run that read no secret pays nothing.
A process runs only for a namespace ``workflows.run.namespaces`` allows.

Events: a ``listen`` first takes the events delivered to the instance's inbox (loaded with the
activation, oldest first); when none is left it parks, committing its subscriptions (see
``_listening``) with the waiting snapshot. The router then puts matching events in the inbox
and re-activates the instance. The snapshot after an event was handed to the interpreter
deletes the inbox rows up to it (the interpreter records consumed and rejected event keys in the
same state, so a redelivered row is never consumed twice). A listen that goes on running after
it took an event (its ``foreach`` iterations, the next event of its strategy) keeps its
subscriptions stored until it ends (``listen_ended``: completed, faulted or cancelled): the
commits meanwhile store them when they are not stored yet and leave them otherwise, and name
the listen in the snapshot (``listening``) so that the next activation (after a park in an
iteration, or a crash) keeps them too. The router so keeps putting its events in the inbox and
asks the running actor to run again: the listen takes them, in order, when it waits next (it
parks, and the next run reads the inbox). The first commit after the listen ended drops them.
Emitted events and lifecycle events become outgoing rows (outbox or ``events`` table) in the
same transaction as the snapshot.

Subflows (``run.workflow``, see ``_subflows``): the child is created pending in the parent's
next commit (``ChildRow``, with the id ``child_instance_id`` derives from the task's execution
key, inserted unless it exists, so a re-run never makes a second child), and started after that
commit (``ports.wake``). Without ``await`` the task commits at once and returns; with it the
parent parks like a listen, without subscriptions (the child knows its parent). The child's
terminal commit puts its end in the parent's inbox in the same transaction and, once durable,
wakes the parent; the parent's run task then takes that end from the inbox (or, when the row
was consumed before a crash, from the stored child) and returns the child's output or raises
its error (``subflow_result``). Subflow rows of the inbox never reach a ``listen``; every one
loaded is deleted by the next commit (unless an unread event precedes it), also one nobody
waits for any more.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn

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
    ServiceCall,
    SubflowRequest,
)
from workflow_orchestrator.instances._commit import (
    PLAIN_COMMIT,
    CommitAsk,
    CommitTarget,
    Pending,
    nothing_to_commit,
    plan_commit,
)
from workflow_orchestrator.instances._listening import outgoing_event, subscription_rows
from workflow_orchestrator.instances._observed import TaskClock, count_transition
from workflow_orchestrator.instances._ports import InstancePorts
from workflow_orchestrator.instances._state_size import (
    encoded_state,
    state_size_exceeded,
    without_data,
)
from workflow_orchestrator.instances._subflows import (
    ChildEnd,
    child_instance_id,
    subflow_depth_exceeded,
    subflow_not_registered,
    subflow_outside_namespace,
    subflow_result,
)
from workflow_orchestrator.instances._unstorable import commit_unstorable
from workflow_orchestrator.security import (
    SecretError,
    SecretNotGranted,
    SecretRedactor,
)
from workflow_orchestrator.storage.instances import (
    SUBFLOW_KEY_PREFIX,
    ChildRow,
    HistoryRow,
    InboxEvent,
    InstanceStatus,
    OutgoingEvent,
    SnapshotUnstorable,
    SubscriptionRow,
    TimerRow,
    partition_of,
)

__all__ = ["CommittedWithout", "DurableEffects", "Parked"]

# Request headers that carry credentials: redacted like the secrets they were built from.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
# The arguments of a service call that hold headers (gRPC metadata, a proto download's).
_SERVICE_HEADERS = ("headers", "metadata", "protoHeaders")
# History keeps the lifecycle without the (possibly large) data each task produced.
_HISTORY_DROPS = ("output", "workflow", "input")
# ``json.dumps(value, separators=(",", ":"), default=str)`` without an encoder per call.
_JSON_TEXT = json.JSONEncoder(separators=(",", ":"), default=str)


class Parked(Exception):
    """The instance waits for a time (``wake_at``) or an event; its snapshot is committed."""

    def __init__(self, wake_at: datetime | None) -> None:
        super().__init__("instance parked")
        self.wake_at = wake_at


class CommittedWithout(Exception):
    """A commit held a value PostgreSQL cannot store: the instance was committed ``status``
    (faulted, or the status a command asked) from its last committed state instead; the run
    ends."""

    def __init__(self, status: InstanceStatus, refused: SnapshotUnstorable) -> None:
        super().__init__(f"instance committed {status} without its last changes")
        self.status = status
        self.refused = refused


def _json_text(value: Any) -> str:
    return _JSON_TEXT.encode(value)


def _history_row(event: CloudEvent, clock: Callable[[], datetime]) -> HistoryRow:
    attributes = event.attributes
    kind = (
        str(attributes.get("type", "")).removeprefix("io.serverlessworkflow.").removesuffix(".v1")
    )
    data = attributes.get("data")
    details = (
        {k: v for k, v in data.items() if k not in _HISTORY_DROPS} if isinstance(data, dict) else {}
    )
    at = attributes.get("time")
    moment = datetime.fromisoformat(at) if isinstance(at, str) and at else clock()
    task_ref = details.get("task") if isinstance(details.get("task"), str) else ""
    return HistoryRow(kind=kind, task_ref=task_ref or "", at=moment, details=details)


@attrs.define(eq=False)
class DurableEffects:
    """Effects of one activation of one instance (see the module docstring).

    ``ports`` is all it uses of the service; ``version`` is the last committed snapshot
    version, ``lease_epoch`` the epoch the activation runs under (stamped on its snapshots);
    ``namespace`` the definition's (for the secret grants and process namespaces);
    ``definition`` its id and ``committed_status`` the stored status the activation started
    from (for the instance metrics, see ``_observed``); ``parent_id`` the parent that awaits
    this instance's end (None: none does) and ``depth`` its number of parents (subflows).
    """

    ports: InstancePorts
    instance_id: uuid.UUID
    partition: int
    lease_epoch: int | None
    version: int
    namespace: str = ""
    definition: str = ""
    committed_status: InstanceStatus = InstanceStatus.RUNNING
    parent_id: uuid.UUID | None = None
    depth: int = 0
    _target: CommitTarget = attrs.field(init=False)
    _tasks: TaskClock | None = attrs.field(default=None, init=False)
    # What the last commit does not hold yet (the inputs of plan_commit):
    _latest: dict[str, Any] | None = attrs.field(default=None, init=False)
    _status: str = attrs.field(default=InstanceStatus.PENDING, init=False)
    _dirty: bool = attrs.field(default=False, init=False)
    _history: list[HistoryRow] = attrs.field(factory=list, init=False)
    _outgoing: list[OutgoingEvent] = attrs.field(factory=list, init=False)
    _sleepers: list[TimerRow] = attrs.field(factory=list, init=False)
    _inbox_through: int = attrs.field(default=0, init=False)
    # True while committed subscriptions (timers) may exist, as the instance was waiting
    # (parked): the next commit removes them unless it parks with new ones.
    _subscribed: bool = attrs.field(default=False, init=False)
    _timed: bool = attrs.field(default=False, init=False)
    # When to commit: an external effect returned since the last commit (commit at the next
    # task boundary), calls in flight (a long wait then sleeps in place instead of parking).
    _effects_since_commit: bool = attrs.field(default=False, init=False)
    _checkpoints_since_commit: int = attrs.field(default=0, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _inbox: list[InboxEvent] = attrs.field(factory=list, init=False)
    _retained_read: set[str] = attrs.field(factory=set, init=False)
    _retained_events: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    # The values of the secrets this activation read: redacted from everything it commits.
    _redactor: SecretRedactor = attrs.field(factory=SecretRedactor, init=False)
    # Subflows: children to create with the next commit, children known to exist (created
    # by this activation, or found stored), the ends of children read from the inbox, and
    # the inbox positions of those rows.
    _children: list[ChildRow] = attrs.field(factory=list, init=False)
    _existing: set[uuid.UUID] = attrs.field(factory=set, init=False)
    _ended: dict[uuid.UUID, ChildEnd] = attrs.field(factory=dict, init=False)
    _subflow_seqs: list[int] = attrs.field(factory=list, init=False)
    _resumed: bool = attrs.field(default=False, init=False)
    # The listen that took an event and runs on (its subscriptions stay stored until it
    # ends), the subscriptions to store with the next commit, and the last ones committed.
    _listening: str = attrs.field(default="", init=False)
    _listen_rows: tuple[SubscriptionRow, ...] | None = attrs.field(default=None, init=False)
    _stored_rows: tuple[SubscriptionRow, ...] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._target = CommitTarget(
            instance_id=self.instance_id, partition=self.partition, lease_epoch=self.lease_epoch
        )
        if self.ports.metrics is not None:
            self._tasks = TaskClock(self.ports.metrics, self.definition)

    # -- time and identity ----------------------------------------------------------------

    def now(self) -> datetime:
        return self.ports.clock()

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
        listening: str = "",
    ) -> None:
        """Take ``state`` (new, or loaded from the last committed snapshot) as the latest
        checkpoint, without marking it dirty.

        A resumed run reaches its first effect before its first checkpoint (the interpreter
        checkpoints at task boundaries, and a snapshot is committed just before an effect, in
        the middle of that task). The flush before that effect then commits the restored state
        again, with the lifecycle events the re-run queued since.

        ``listening`` is the listen the snapshot names as running its iterations: the
        subscriptions it keeps stay stored until it ends.
        """
        self._latest = state.to_json()
        self._status = state.status
        self._inbox = []
        for item in inbox:
            if item.key.startswith(SUBFLOW_KEY_PREFIX):
                self._subflow_seqs.append(item.seq)
                end = ChildEnd.from_inbox(item)
                if end is not None:
                    self._ended[end.child_id] = end
            else:
                self._inbox.append(item)
        self._subscribed = waiting or bool(inbox)
        self._timed = waiting or resumed  # a resumed instance may have parked before
        self._resumed = resumed
        self._listening = listening

    def add_lifecycle_event(self, event: CloudEvent) -> None:
        history = _history_row(event, self.ports.clock)
        self._history.append(history)
        if self._tasks is not None:
            self._tasks.lifecycle(history)
        row = self.ports.events.lifecycle_outgoing(event)
        if row is not None:
            self._outgoing.append(row)

    async def checkpoint(self, state: ExecutionState) -> None:
        self._latest = state.to_json()
        self._status = state.status
        self._dirty = True
        self._checkpoints_since_commit += 1
        if self._effects_since_commit:
            # A task that called out has completed: commit now, so that it never runs again.
            await self.flush()
        elif self._checkpoints_since_commit >= self.ports.commit_every:
            # A long run without effects: commit its progress (and the history it made).
            await self.flush()

    def pending(self) -> Pending:
        """What the last commit does not hold yet (no I/O)."""
        return Pending(
            state=self._latest,
            status=self._status,
            changed=self._dirty,
            history=tuple(self._history),
            outgoing=tuple(self._outgoing),
            sleepers=tuple(self._sleepers),
            inbox_through=self._consumed_through(),
            subscriptions_held=self._subscribed and not self._listening,
            timers_held=self._timed,
            children=tuple(self._children),
            subscriptions=self._listen_rows,
            listening=self._listening,
        )

    def _consumed_through(self) -> int:
        """The inbox position a commit deletes up to: the events handed to the interpreter
        (in order), and the subflow rows loaded that no unread event precedes."""
        through = self._inbox_through
        if self._subflow_seqs:
            unread = self._inbox[0].seq if self._inbox else None
            below = [seq for seq in self._subflow_seqs if unread is None or seq < unread]
            through = max(through, *below) if below else through
        return through

    async def flush(self, ask: CommitAsk = PLAIN_COMMIT) -> None:
        """Commit what is pending (``plan_commit``), with ``ask`` (a park, a status decided
        outside the interpreter); returns once it is durable, at once when nothing is."""
        if nothing_to_commit(self._dirty, self._history, self._outgoing, ask):
            return
        state_text: str | None = None
        redacting = bool(self._redactor)
        if redacting and self._latest is not None:
            # The checkpoint itself is replaced by its redacted copy: the interpreter keeps its
            # own state object, and a later commit_final must not write the values either.
            self._latest = self._redactor.redact(self._latest)
        if self._dirty and self._latest is not None:
            ask, state_text = self._within_state_size(self._latest, ask)
        pending = self._redacted_pending() if redacting else self.pending()
        snapshot = plan_commit(
            self._target, self.version, pending, ask, self.now(), state_text=state_text
        )
        if snapshot is None:
            return
        # The commit now holds all this: later effects start a new pending set (before the
        # write's await, so what happens meanwhile goes to the next commit).
        self.version = snapshot.snapshot_version
        self._history = []
        self._outgoing = []
        self._children = []
        self._dirty = False
        self._effects_since_commit = False
        self._checkpoints_since_commit = 0
        if snapshot.subscriptions is not None:
            self._subscribed = bool(snapshot.subscriptions)
            self._stored_rows, self._listen_rows = snapshot.subscriptions, None
        if snapshot.timers is not None:
            self._timed = bool(snapshot.timers)
        try:
            await self.ports.snapshots.write(snapshot)
        except SnapshotUnstorable as refused:
            # Retrying cannot help: end the instance alone, without the value (never a crash).
            status = await commit_unstorable(
                self.ports, self._target, snapshot, refused, ask.status
            )
            self._count(status)
            await self._wake_after(status, ())
            raise CommittedWithout(status, refused) from None
        self._count(snapshot.status)
        self.ports.committed(self.instance_id, snapshot.status)
        await self._wake_after(snapshot.status, snapshot.children)

    async def _wake_after(self, status: InstanceStatus, children: tuple[ChildRow, ...]) -> None:
        """A commit is durable: start the children it created, and wake the parent that awaits
        this instance when it ended (its end is in the parent's inbox now)."""
        ids = [child.child_id for child in children]
        if status.terminal and self.parent_id is not None:
            ids.append(self.parent_id)
        if ids:
            await self.ports.wake(ids)

    def _count(self, status: InstanceStatus) -> None:
        """``status`` is committed: count the start or end it makes (``_observed``)."""
        before, self.committed_status = self.committed_status, status
        count_transition(self.ports.metrics, self.definition, before, status)

    def _redacted_pending(self) -> Pending:
        """``pending()`` with the secret values read redacted from its history and outgoing
        events (the caller redacted the state)."""
        redact = self._redactor.redact
        pending = self.pending()
        return attrs.evolve(
            pending,
            history=tuple(
                attrs.evolve(row, details=redact(row.details)) for row in pending.history
            ),
            outgoing=tuple(
                attrs.evolve(row, body=_json_text(redact(json.loads(row.body))))
                for row in pending.outgoing
            ),
            children=tuple(attrs.evolve(row, input=redact(row.input)) for row in pending.children),
        )

    def _within_state_size(
        self, state: dict[str, Any], ask: CommitAsk
    ) -> tuple[CommitAsk, str | None]:
        """``ask`` and the JSON of ``state`` (encoded once: the snapshot writer reuses it) when
        ``state`` is within ``max_state_size``. Otherwise a running instance raises
        `LimitExceeded` (the interpreter faults it and commits that), and a final state (ended,
        or a status decided outside the interpreter) becomes faulted without its data (a
        cancelled one stays cancelled); returns the ask that commits it."""
        limit = self.ports.max_state_size
        text = encoded_state(state)
        if text is None or limit <= 0 or len(text) <= limit:
            return ask, text
        size = len(text)
        error = state_size_exceeded(size, limit)
        status = ask.status if ask.status is not None else InstanceStatus(self._status)
        if ask.status is None and not status.terminal:
            raise error
        problem = error.problem.to_json()
        if status is InstanceStatus.CANCELLED:
            final, own = InstanceStatus.CANCELLED, state.get("error")
        elif state.get("status") == InstanceStatus.FAULTED:
            final, own = InstanceStatus.FAULTED, state.get("error") or problem
        else:
            final, own = InstanceStatus.FAULTED, problem
            self._history.append(
                HistoryRow(kind="workflow.faulted", at=self.now(), details={"error": problem})
            )
        self._latest = without_data(
            state, status=final, error=own, fallback_error=problem, limit=limit
        )
        self._status = final
        return attrs.evolve(ask, status=final), None

    def _park_timers(self, own: TimerRow | None) -> tuple[TimerRow, ...]:
        """The durable timers of a park: this wait's and those other tasks sleep on."""
        return (*self._sleepers, *([own] if own is not None else []))

    @staticmethod
    def _wake_time(timers: tuple[TimerRow, ...]) -> datetime | None:
        return min((t.due_at for t in timers), default=None)

    async def commit_final(self, status: InstanceStatus, state: ExecutionState) -> None:
        """Write a status decided outside the interpreter (cancelled, suspended) on top of
        the last checkpoint: whatever ran since then runs again on resume."""
        self._latest = dict(self._latest) if self._latest is not None else state.to_json()
        self._latest["status"] = status
        await self.flush(CommitAsk(status=status, note=status))

    # -- effects --------------------------------------------------------------------------

    async def sleep_until(self, when: datetime, *, key: str = "", kind: str = "wait") -> None:
        delay = (when - self.now()).total_seconds()
        if delay <= 0:
            return
        timer = TimerRow(timer_key=key or f"timer@{when.isoformat()}", kind=kind, due_at=when)
        # A timeout's timer runs beside the work it guards: it never parks the instance itself
        # (the guarded work parks when it waits, with this timer among its durable timers).
        if kind != "timeout" and delay > self.ports.park_after and self._in_flight == 0:
            timers = self._park_timers(timer)
            wake_at = self._wake_time(timers)
            await self.flush(CommitAsk(wake_at=wake_at, timers=timers))
            raise Parked(wake_at)
        self._sleepers.append(timer)  # before any await: a park meanwhile must include it
        try:
            await self.flush()
            await trio.sleep(max((when - self.now()).total_seconds(), 0.0))
        finally:
            self._sleepers.remove(timer)

    async def http(self, request: HttpRequest) -> HttpResponse:
        if self._redactor:
            # A credential built from secrets (a basic header's base64, an OAuth2 token) is
            # as secret as they are: nothing committed after this holds it either.
            for header, value in request.headers.items():
                if header.lower() in _CREDENTIAL_HEADERS:
                    self._redactor.add(header.lower(), [value, value.partition(" ")[2]])
        await self.flush()
        self._in_flight += 1
        try:
            return await self.ports.http.http(request)
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
        self._outgoing.append(outgoing_event(event, self.ports.events.emit_destination))
        self._dirty = True
        await self.flush()

    async def wait_event(self, request: ListenRequest) -> CloudEvent:
        """The next inbox event not excluded (the listen keeps its subscriptions stored while
        it runs on); else park with the request's subscriptions."""
        # Before an event is taken: nothing may cancel the hand-over once it is.
        rows = await subscription_rows(request, self.ports.shapes)
        if self._redactor:
            self._refuse_secret_subscriptions(rows)
        event = self._from_inbox(request)
        if event is None:
            event = await self._retained(request)
        if event is not None:
            self._listening = request.task_ref
            if rows != self._stored_rows:
                self._listen_rows = rows  # stored with the next commit
            return event
        for _ in range(3):
            await trio.lowlevel.checkpoint()  # let a timeout's timer task start sleeping first
        timers = self._park_timers(None)
        wake_at = self._wake_time(timers)
        await self.flush(CommitAsk(wake_at=wake_at, subscriptions=rows, timers=timers))
        raise Parked(wake_at)

    def _from_inbox(self, request: ListenRequest) -> CloudEvent | None:
        """The next loaded inbox event not excluded (handed over: consumed with the next
        commit); None when none is left."""
        while self._inbox:
            item = self._inbox.pop(0)
            self._inbox_through = max(self._inbox_through, item.seq)
            event = CloudEvent(attributes=item.event)
            if event.key not in request.exclude:
                self._dirty = True
                return event
        return None

    def listen_ended(self, task_ref: str) -> None:
        """The listen ``task_ref`` ended: the next commit drops the subscriptions it kept
        (unless another listen took over since)."""
        if self._listening not in ("", task_ref):
            return
        self._listening = ""
        self._listen_rows = self._stored_rows = None
        self._subscribed = True

    def _refuse_secret_subscriptions(self, rows: tuple[SubscriptionRow, ...]) -> None:
        """A listen's correlation keys and filters are stored as they are (events are matched
        on them, while it is parked or runs its iterations): one that holds a secret value
        faults the task instead."""
        for row in rows:
            if self._redactor.holds_secret(row.corr_key) or self._redactor.holds_secret(
                _json_text(row.attributes)
            ):
                raise WorkflowError(
                    Problem.standard(
                        ErrorType.CONFIGURATION,
                        detail=f"the listen of task {row.task_ref!r} correlates or filters on "
                        "the value of a secret, which would be stored with its subscription; "
                        "correlate on a value that is not secret",
                    )
                )

    async def _retained(self, request: ListenRequest) -> CloudEvent | None:
        """A retained unmatched event for this listen (``eventProcessing.unmatchedRetention``),
        read once per listen task and activation; None when there is none left."""
        keep = self.ports.unmatched_retention
        if keep <= 0:
            return None
        if request.task_ref not in self._retained_read:
            self._retained_read.add(request.task_ref)
            types = {str(f.attributes.get("type", "")) for f in await request.subscriptions()}
            self._retained_events.extend(await self.ports.retained_events(types, keep))
        while self._retained_events:
            event = CloudEvent(attributes=self._retained_events.pop(0))
            if event.key not in request.exclude:
                self._dirty = True
                return event
        return None

    async def run_subflow(self, request: SubflowRequest) -> Any:
        """Start the child instance (once, by key) and, awaiting it, park until it ends; then
        its output, or its error (see the module docstring)."""
        child_id = child_instance_id(self.instance_id, request.key)
        end = self._ended.pop(child_id, None)
        if end is not None:
            self._dirty = True  # its inbox row is consumed with the next commit
            return subflow_result(request, end)
        if child_id not in self._existing and self._resumed:
            # An earlier activation may have created it (and consumed its end before a crash).
            stored = await self.ports.subflows.find(child_id)
            if stored is not None:
                self._existing.add(child_id)
                end = ChildEnd.from_record(stored)
                if request.await_completion and end is not None:
                    return subflow_result(request, end)
        if child_id not in self._existing:
            await self._start_child(request, child_id)
        if not request.await_completion:
            return None
        return await self._await_child()

    async def _start_child(self, request: SubflowRequest, child_id: uuid.UUID) -> None:
        """Resolve the definition and queue the child's row for the next commit (committed
        now when the parent does not wait for it)."""
        if request.namespace != self.namespace:
            raise subflow_outside_namespace(request, self.namespace)
        depth = self.depth + 1
        limit = self.ports.subflow_depth
        if limit > 0 and depth > limit:
            subflow_depth_exceeded(request, depth, limit)
        version = None if request.version in ("", "latest") else request.version
        resolved = await self.ports.subflows.resolve_workflow(
            request.namespace, request.name, version
        )
        if resolved is None:
            raise subflow_not_registered(request)
        definition_id, definition_version = resolved
        self._children.append(
            ChildRow(
                child_id=child_id,
                partition=partition_of(child_id),
                definition_id=definition_id,
                definition_version=definition_version,
                input=request.input,
                awaited=request.await_completion,
                depth=depth,
            )
        )
        self._history.append(
            HistoryRow(
                kind="subflow.started",
                at=self.now(),
                details={
                    "childId": str(child_id),
                    "workflowDefinitionId": definition_id,
                    "version": definition_version,
                    "await": request.await_completion,
                },
            )
        )
        self._existing.add(child_id)
        self._dirty = True
        if not request.await_completion:
            await self.flush()

    async def _await_child(self) -> NoReturn:
        """Park until a child ends (its end in the inbox re-activates the instance)."""
        for _ in range(3):
            await trio.lowlevel.checkpoint()  # let a timeout's timer task start sleeping first
        timers = self._park_timers(None)
        wake_at = self._wake_time(timers)
        # No subscriptions of its own; a listen running this in an iteration keeps its own.
        subscriptions = None if self._listening else ()
        await self.flush(CommitAsk(wake_at=wake_at, subscriptions=subscriptions, timers=timers))
        raise Parked(wake_at)

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        if not self.ports.policy.process_allowed(self.namespace):
            raise WorkflowError(
                Problem.standard(
                    ErrorType.CONFIGURATION,
                    detail=f"namespace {self.namespace!r} may not run run.{request.kind} "
                    "processes; add it to workflows.run.namespaces in the configuration",
                )
            )
        await self.flush()
        self._in_flight += 1
        try:
            return await self.ports.processes.run_process(request)
        finally:
            self._in_flight -= 1
            self._effects_since_commit = True

    async def call_service(self, request: ServiceCall) -> Any:
        """A call through the ports' service adapters, committed before and after like an
        HTTP call (the request carries the definition's namespace)."""
        if self._redactor:
            # Credentials the interpreter built for the call (gRPC's ``metadata``, a proto
            # download's ``protoHeaders``) are redacted like an HTTP call's headers.
            for name in _SERVICE_HEADERS:
                headers = request.arguments.get(name)
                if not isinstance(headers, Mapping):
                    continue
                for header, value in headers.items():
                    if str(header).lower() in _CREDENTIAL_HEADERS and isinstance(value, str):
                        self._redactor.add(header.lower(), [value, value.partition(" ")[2]])
        await self.flush()
        self._in_flight += 1
        try:
            return await self.ports.services.call(attrs.evolve(request, namespace=self.namespace))
        finally:
            self._in_flight -= 1
            self._effects_since_commit = True

    @asynccontextmanager
    async def consume_messages(self, request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        """A subscription through the ports' service adapters, committed before it opens; the
        task that consumed is committed at its end like any task that called out."""
        await self.flush()
        self._in_flight += 1
        try:
            async with self.ports.services.consume(
                attrs.evolve(request, namespace=self.namespace)
            ) as messages:
                yield messages
        finally:
            self._in_flight -= 1
            self._effects_since_commit = True

    async def get_secret(self, name: str) -> Any:
        """The value of secret ``name`` when the namespace is granted it; remembered so that
        no commit stores it. Faults with an authorization error naming the setting to fix."""
        try:
            if not self.ports.policy.secret_granted(self.namespace, name):
                raise SecretNotGranted(name, self.namespace)
            value = await self.ports.secrets.read(name)
        except SecretError as error:
            raise WorkflowError(
                Problem.standard(ErrorType.AUTHORIZATION, detail=str(error))
            ) from None
        self._redactor.add(name, value)
        return value
