"""The instance runtime of one replica: starts, commands, recovery, wake-ups, long polls.

Ownership: instances live in the partitions this replica leases; their actors run under the
``/user/instances`` supervisor (one_for_one, a dynamic child per running instance). On start the
runtime resumes every non-terminal instance of its partitions from its snapshot and re-arms the
timers of the waiting ones.

Commands (cancel, suspend, resume) go to the live actor when the instance is running, which
stops its run and commits the status itself; otherwise they change the stored status directly.
A per-instance lock orders a command against an activation of the same instance, so neither
overwrites the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import attrs
import trio

from workflow_orchestrator.actors import FailureInfo
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    ProcessRequest,
    ProcessResult,
)
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.instances._actor import InstanceActor, Run
from workflow_orchestrator.instances._catalog import WorkflowCatalog
from workflow_orchestrator.instances._listening import EventOptions, ShapeRegistry
from workflow_orchestrator.instances._timers import WakeTimers
from workflow_orchestrator.storage import (
    TERMINAL_STATUSES,
    Database,
    HistoryRow,
    InstanceCreator,
    InstanceRecord,
    InstanceSnapshot,
    NewInstance,
    PartitionLeases,
    RecoverableInstance,
    SnapshotWriter,
    create_instance,
    get_definition,
    list_recoverable,
    load_instance,
    notify_wake,
    partition_of,
    set_status,
)
from workflow_orchestrator.supervision import ActorSpec, Restart, Supervisor

__all__ = ["HttpClient", "InputInvalid", "InstanceRuntime", "StartRequest"]

logger = logging.getLogger(__name__)

_RECOVERY_PAGE = 500
_WAKE_HOLD = 10.0
_COMMANDS = {
    "cancel": ("cancelled", ("pending", "running", "waiting", "suspended")),
    "suspend": ("suspended", ("pending", "running", "waiting")),
    "resume": ("running", ("suspended",)),
}


class HttpClient(Protocol):
    """What the runtime needs of an HTTP client (``HttpxClient`` in the service)."""

    async def http(self, request: HttpRequest) -> HttpResponse: ...


class InputInvalid(OrchestratorError, ValueError):
    """The input does not match the definition's ``input.schema``; ``problems`` say where."""

    def __init__(self, definition_id: str, version: str, problems: list[dict[str, str]]) -> None:
        self.definition_id = definition_id
        self.version = version
        self.problems = problems
        super().__init__(
            f"the input does not match the input.schema of definition {definition_id!r} "
            f"version {version!r}: {problems[0]['pointer']}: {problems[0]['message']}"
        )


@attrs.frozen(kw_only=True)
class StartRequest:
    """What ``start_instance`` needs; ``version`` None means the latest live version."""

    definition_id: str
    version: str | None = None
    input: Any = attrs.field(factory=dict)
    business_key: str | None = None
    idempotency_key: str | None = None


@attrs.define(eq=False)
class InstanceRuntime:
    """See the module docstring."""

    database: Database
    writer: SnapshotWriter
    leases: PartitionLeases
    catalog: WorkflowCatalog
    supervisor: Supervisor
    http_client: HttpClient
    # Runs enabled shell/script tasks (``run_local_process`` in the service).
    process_runner: Callable[[ProcessRequest], Awaitable[ProcessResult]]
    run_process_enabled: tuple[bool, bool] = (False, False)  # shell, script
    park_after: float = 1.0
    partition_check_every: float = 2.0
    event_options: EventOptions = attrs.field(factory=EventOptions)
    unmatched_retention: float = 0.0
    # Parked instances due within this many seconds arm their in-memory wake-up themselves;
    # later ones are armed by the scheduler's timer service as they come near.
    timer_lookahead: float = 5.0
    wake_concurrency: int = 10
    live: dict[uuid.UUID, InstanceActor] = attrs.field(factory=dict, init=False)
    shapes: ShapeRegistry = attrs.field(init=False)
    timers: WakeTimers = attrs.field(init=False)
    creator: InstanceCreator = attrs.field(init=False)
    # definition id -> the latest live version seen; only a hint, checked by the INSERT.
    _latest_versions: dict[str, str] = attrs.field(factory=dict, init=False)
    _locks: dict[uuid.UUID, trio.Lock] = attrs.field(factory=dict, init=False)
    _commanded: set[uuid.UUID] = attrs.field(factory=set, init=False)
    _waiters: dict[uuid.UUID, trio.Event] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self.timers = WakeTimers(
            wake=self.wake, limiter=trio.CapacityLimiter(self.wake_concurrency)
        )
        self.creator = InstanceCreator(database=self.database)
        self.shapes = ShapeRegistry(database=self.database)

    # -- service --------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[InstanceRuntime] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Recover the partitions' instances, then fire wake-ups until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.creator.run)
            await nursery.start(self.timers.run)
            held = self._epochs()
            await self._recover_logged(frozenset(held))
            task_status.started(self)
            # Partitions granted later (another replica died or gave them up, or this one got
            # them back under a new epoch after a stall that fenced its actors) are recovered
            # as they come.
            while True:
                await trio.sleep(self.partition_check_every)
                current = self._epochs()
                granted = frozenset(p for p, epoch in current.items() if held.get(p) != epoch)
                if granted:
                    await self._recover_logged(granted)
                held = current

    def _epochs(self) -> dict[int, int]:
        return {p: lease.epoch for p, lease in self.leases.current().leases.items()}

    async def _recover_logged(self, partitions: frozenset[int]) -> None:
        found = await self.recover(partitions)
        if found:
            logger.info("recovered %d workflow instances in %d partitions", found, len(partitions))

    async def recover(self, partitions: frozenset[int]) -> int:
        """Resume running instances and re-arm waiting ones; returns how many were found."""
        after: uuid.UUID | None = None
        found = 0
        while partitions:
            page = await list_recoverable(
                self.database, partitions=partitions, after=after, limit=_RECOVERY_PAGE
            )
            for item in page:
                found += 1
                record = item.record
                if record.status == "waiting" and item.has_inbox:
                    await self.activate(record.instance_id)  # events arrived meanwhile
                elif record.status in ("pending", "running"):
                    await self.activate(record.instance_id, item)
            if len(page) < _RECOVERY_PAGE:
                break
            after = page[-1].record.instance_id
        return found

    # -- starting and waking --------------------------------------------------------------

    async def start_instance(self, request: StartRequest) -> tuple[InstanceRecord, bool]:
        """Create (or, for a used idempotency key, find) an instance and start it.

        Raises ``DefinitionNotFound`` and ``InputInvalid``.

        The fast path reads nothing: the latest version of the definition is the one seen
        last (a hint), the input is checked against it, and the ``InstanceCreator`` inserts
        the instance with other starts in one statement, only if that version is still the
        latest live one (or, when the request names a version, still live). Otherwise (the
        first start of a definition, a stale hint, a missing definition) the start reads the
        definition and creates the instance on its own, as ``create_instance`` does.
        """
        definition_id = request.definition_id
        version = request.version or self._latest_versions.get(definition_id)
        if version is not None and self.creator.running:
            interpreter = await self.catalog.interpreter(definition_id, version)
            problems = self.catalog.input_problems(
                definition_id, version, interpreter.workflow, request.input
            )
            if problems and request.version is not None:
                raise InputInvalid(definition_id, version, problems)
            if not problems:
                outcome = await self.creator.create(
                    NewInstance(
                        definition_id=definition_id,
                        definition_version=version,
                        latest=request.version is None,
                        input=request.input,
                        business_key=request.business_key,
                        idempotency_key=request.idempotency_key,
                    )
                )
                if isinstance(outcome, tuple):
                    record, created = outcome
                    if created:
                        await self._run_new(record)
                    return record, created
            # The hinted latest version is stale or rejects the input, or the version check
            # failed: read what is stored now (this raises for a missing definition or
            # invalid input, and refreshes the hint).
        return await self._start_reading(request)

    async def _start_reading(self, request: StartRequest) -> tuple[InstanceRecord, bool]:
        """Start an instance with its own reads and statements (see ``start_instance``)."""
        version = request.version
        if version is None:
            version = (await get_definition(self.database, request.definition_id)).version
            self._latest_versions[request.definition_id] = version
        interpreter = await self.catalog.interpreter(request.definition_id, version)
        problems = self.catalog.input_problems(
            request.definition_id, version, interpreter.workflow, request.input
        )
        if problems:
            raise InputInvalid(request.definition_id, version, problems)
        record, created = await create_instance(
            self.database,
            definition_id=request.definition_id,
            definition_version=version,
            input=request.input,
            business_key=request.business_key,
            idempotency_key=request.idempotency_key,
        )
        if created:
            await self._run_new(record)
        return record, created

    async def _run_new(self, record: InstanceRecord) -> None:
        """Run a new instance here when this replica holds its partition, else tell the
        replica that does (``NOTIFY workflow_wake``; its sweep finds it if that is lost)."""
        if record.partition in self.leases.current().partitions:
            await self.activate(
                record.instance_id, RecoverableInstance(record=record, snapshot=None)
            )
            return
        ids = [str(record.instance_id)]
        await self.database.run(lambda connection: notify_wake(connection, ids))

    async def wake(self, instance_id: uuid.UUID) -> None:
        """A parked instance is due: run it again from its snapshot (when this replica still
        holds its partition; otherwise its new owner fires the timer)."""
        if partition_of(instance_id) not in self.leases.current().partitions:
            return
        await self.activate(instance_id)
        actor = self.live.get(instance_id)
        if actor is not None:
            # Hold the caller's wake-up slot while the instance runs (bounded: a long call must
            # not keep a slot for ever), so due timers queue rather than flood the process.
            with trio.move_on_after(_WAKE_HOLD):
                await actor.wait_gone()

    def parked(self, instance_id: uuid.UUID, wake_at: datetime | None) -> None:
        """An instance parked (its timers are committed): arm its wake-up when it is near."""
        if wake_at is None:
            self.timers.disarm(instance_id)
        elif (wake_at - datetime.now(UTC)).total_seconds() <= self.timer_lookahead:
            self.timers.arm(instance_id, wake_at)

    async def activate(
        self, instance_id: uuid.UUID, activation: RecoverableInstance | None = None
    ) -> None:
        """Start the instance's actor (if not running) and tell it to run.

        An actor that is running already runs once more after its current run (an event may
        have arrived after it read its inbox); one that has finished is waited for first.
        """
        async with self._guard(instance_id):
            actor = self.live.get(instance_id)
            if actor is not None:
                if actor.run_again():
                    return
                await actor.wait_gone()
            if instance_id in self._commanded:
                self._commanded.discard(instance_id)
                activation = None  # a command changed it since: read it again
            spec = ActorSpec[Any](
                name=str(instance_id),
                factory=partial(InstanceActor, self, instance_id),
                restart=Restart.TRANSIENT,
                mailbox_capacity=4,
                shutdown_timeout=10.0,
            )
            ref = await self.supervisor.get_or_start_child(spec)
            ref.tell_nowait(Run(activation=activation))

    # -- commands -------------------------------------------------------------------------

    async def command(self, instance_id: uuid.UUID, action: str) -> None:
        """``cancel``, ``suspend`` or ``resume``, committed when this returns; raises
        ``InstanceNotFound`` and ``InvalidStatusTransition``."""
        status, allowed_from = _COMMANDS[action]
        actor = self.live.get(instance_id)
        if actor is not None and action != "resume":
            await actor.interrupt(status)
            return
        async with self._guard(instance_id):
            self._commanded.add(instance_id)
            await set_status(
                self.database,
                instance_id,
                status,
                allowed_from=allowed_from,
                history_kind=f"workflow.{status if action != 'resume' else 'resumed'}",
            )
            if status != "running":
                self.timers.disarm(instance_id)
            self.committed(instance_id, status)
        if action == "resume":
            await self.activate(instance_id)

    async def fault(
        self, instance_id: uuid.UUID, failure: FailureInfo | None, attempts: int
    ) -> None:
        """Record a runtime error (a bug of ours) as the instance's fault."""
        current = await load_instance(self.database, instance_id)
        detail = f"{failure.type}: {failure.message}" if failure is not None else "unknown failure"
        problem = Problem.standard(
            ErrorType.RUNTIME,
            title="Runtime Error",
            detail=f"the instance failed {attempts} times in the runtime ({detail}); it is "
            "marked faulted instead of being retried again",
        ).to_json()
        record = current.record
        await self.writer.write(
            InstanceSnapshot(
                instance_id=instance_id,
                partition=record.partition,
                snapshot_version=record.snapshot_version + 1,
                status="faulted",
                snapshot=current.snapshot or {},
                output=None,
                error=problem,
                context=record.context or {},
                completed_at=datetime.now(UTC),
                history=(HistoryRow(kind="workflow.faulted", details={"error": problem}),),
            )
        )
        logger.error(
            "workflow instance %s faulted after %d runtime failures: %s",
            instance_id,
            attempts,
            detail,
            extra={"instance_id": str(instance_id)},
        )
        self.committed(instance_id, "faulted")

    # -- waiting for the end --------------------------------------------------------------

    def committed(self, instance_id: uuid.UUID, status: str) -> None:
        """Called after a status is committed: wakes long polls on terminal states."""
        if status in TERMINAL_STATUSES:
            event = self._waiters.pop(instance_id, None)
            if event is not None:
                event.set()

    async def wait_terminal(self, instance_id: uuid.UUID, seconds: float) -> InstanceRecord:
        """The instance once terminal, or as it is when ``seconds`` have passed."""
        with trio.move_on_after(seconds):
            while True:
                record = (await load_instance(self.database, instance_id)).record
                if record.terminal:
                    return record
                event = self._waiters.setdefault(instance_id, trio.Event())
                # Poll too: another replica (or a command) may finish it without telling us.
                with trio.move_on_after(1.0):
                    await event.wait()
        return (await load_instance(self.database, instance_id)).record

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        shell, script = self.run_process_enabled
        if (request.kind == "shell" and not shell) or (request.kind == "script" and not script):
            raise WorkflowError(
                Problem.standard(
                    ErrorType.CONFIGURATION,
                    detail=f"run.{request.kind} is disabled; set workflows.run.{request.kind}: "
                    "true in the configuration",
                )
            )
        return await self.process_runner(request)

    @asynccontextmanager
    async def _guard(self, instance_id: uuid.UUID) -> AsyncIterator[None]:
        lock = self._locks.get(instance_id)
        if lock is None:
            lock = self._locks[instance_id] = trio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(instance_id, None)
