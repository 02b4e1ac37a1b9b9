"""The instance runtime of one replica: starts, commands, recovery, wake-ups, long polls.

Ownership: instances live in the partitions this replica leases; their actors run under the
``/user/instances`` supervisor (one_for_one, a dynamic child per running instance). Once it
reports ready, the runtime resumes in the background every non-terminal instance of its
partitions from its snapshot, in pages (so recovery never delays readiness or the listeners).

Capacity: at most ``max_active`` actors live at once. Starts, activations, wake-ups and
recovery all go through one bounded ``ActivationQueue`` (see ``_admission``); a dispatcher
starts them as slots free, and what overflows the queue is drained from the database in pages.

Commands (cancel, suspend, resume) go to the live actor when the instance is running, which
stops its run and commits the status itself; otherwise they change the stored status directly.
An actor that does not settle within ``command_timeout`` (its run ignores cancellation) or that
crash-loops is stopped, and the status is committed directly, so a command always ends.
A per-instance lock orders a command against an activation of the same instance, so neither
overwrites the other. Cancelling an instance cancels its descendants (subflows) that have not
ended: in the same transaction when the status is committed here, right after the actor's own
commit otherwise; a crash in between is repaired when the partition is recovered (the children
of the cancelled instances of the partitions recovered are cancelled first). The runs of
cancelled descendants on this replica are abandoned (on other replicas their next commit is
refused). A terminal status committed here for a child its parent awaits wakes the parent.

Subflows: commits hand the runtime the instances whose work they made durable (the children a
parent created, the parent a child's end was delivered to) through ``wake_instances``: each
runs here when this replica holds its partition, otherwise its owner is notified
(``notify_wake``); a lost notification is found by the owner's wake-up sweep.

The runtime receives what it uses from the composition root (an ``InstanceRepository`` for
its own reads, starts and status changes, the snapshot sink, its view of the partition leases,
the catalog, the supervisor, HTTP and processes) and hands its actors one frozen
``InstancePorts`` built from them and its own callbacks; nobody reaches through the runtime to
those. With ``instances.testing.InMemoryInstanceStore`` as repository, sink and lease view, it
runs with no database.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.actors import ActorNotFound
from workflow_orchestrator.dsl import LruCache
from workflow_orchestrator.dsl.runtime import ServiceAdapters
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.instances._actor import start_instance_actor
from workflow_orchestrator.instances._admission import ActivationQueue, Slot
from workflow_orchestrator.instances._catalog import WorkflowCatalog
from workflow_orchestrator.instances._commands import Command, command_transition
from workflow_orchestrator.instances._listening import EventOptions
from workflow_orchestrator.instances._live import LiveInstances
from workflow_orchestrator.instances._ports import (
    HttpPort,
    InstancePorts,
    ProcessPort,
    SnapshotSink,
    utc_now,
)
from workflow_orchestrator.instances._recovery import recovery_run
from workflow_orchestrator.instances._repository import InstanceRepository, LeaseView
from workflow_orchestrator.instances._timers import WakeTimers, due_within
from workflow_orchestrator.instances._waiters import DEFAULT_RECHECK, TerminalWaiters
from workflow_orchestrator.observability import InstanceMetrics
from workflow_orchestrator.security import NamespacePolicy, SecretStore
from workflow_orchestrator.storage.instances import (
    InstanceRecord,
    InstanceStatus,
    NewInstance,
    RecoverableInstance,
    partition_of,
)
from workflow_orchestrator.supervision import Supervisor

__all__ = ["InputInvalid", "InstanceRuntime", "StartRequest"]

logger = logging.getLogger(__name__)

_RECOVERY_PAGE = 500
_MAX_VERSION_HINTS = 10_000
# How long an activation waits for room in a full queue before it overflows to the database
# backlog (backpressure on the router and the wake-up listener, never a deadlock).
_ACTIVATION_PATIENCE = 5.0
# Bound of stopping an actor whose run ignores cancellation (its shutdown_timeout, the cancel
# grace and some margin).
_STOP_BOUND = 15.0


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
    """See the module docstring.

    ``repository`` is the runtime's storage (``DatabaseInstanceRepository`` in the service),
    ``leases`` its view of the partitions it holds; ``snapshots`` is where the actors commit
    (the ``SnapshotWriter``), ``http`` and ``processes`` their outbound effects; recovery reads
    ``recovery_page`` instances at a time; ``on_timer_fired(lateness_seconds)`` is told about
    every wake-up fired (the scheduler's metrics); ``secrets`` and ``policy`` are the
    ``$secrets`` providers and the namespace grants; ``metrics`` counts starts, ends and task
    durations by definition (None: nothing). ``timers`` (the in-memory wake-ups, which
    the scheduler's timer service arms) and ``live`` (the running actors) are the runtime's
    own; ``ports`` is the record every actor of this runtime receives.
    """

    _repository: InstanceRepository = attrs.field(alias="repository")
    _snapshots: SnapshotSink = attrs.field(alias="snapshots")
    _leases: LeaseView = attrs.field(alias="leases")
    _catalog: WorkflowCatalog = attrs.field(alias="catalog")
    _supervisor: Supervisor = attrs.field(alias="supervisor")
    _http: HttpPort = attrs.field(alias="http")
    _processes: ProcessPort = attrs.field(alias="processes")
    park_after: float = 1.0
    # workflows.limits.stateSize and commitEvery (see InstancePorts).
    max_state_size: int = 16 * 1024 * 1024
    commit_every: int = 1000
    partition_check_every: float = 2.0
    event_options: EventOptions = attrs.field(factory=EventOptions)
    unmatched_retention: float = 0.0
    # Parked instances due within this many seconds arm their in-memory wake-up themselves;
    # later ones are armed by the scheduler's timer service as they come near.
    timer_lookahead: float = 5.0
    wake_concurrency: int = 10
    recovery_page: int = _RECOVERY_PAGE
    # workflows.maxActiveInstances: live actors at once; as many activations may queue.
    max_active: int = 10_000
    command_timeout: float = 5.0
    on_timer_fired: Callable[[float], None] | None = None
    clock: Callable[[], datetime] = utc_now
    # Long polls re-read an instance this often when no commit here woke them.
    long_poll_recheck: float = DEFAULT_RECHECK
    secrets: SecretStore = attrs.field(factory=SecretStore)
    policy: NamespacePolicy = attrs.field(factory=NamespacePolicy)
    metrics: InstanceMetrics | None = None
    # The adapters of gRPC, AsyncAPI and MCP calls and of run.container (see InstancePorts).
    services: ServiceAdapters = attrs.field(factory=ServiceAdapters)
    # workflows.limits.subflowDepth: the most parents an instance may have (0: no limit).
    subflow_depth: int = 10
    live: LiveInstances = attrs.field(factory=LiveInstances, init=False)
    timers: WakeTimers = attrs.field(init=False)
    ports: InstancePorts = attrs.field(init=False)
    _waiters: TerminalWaiters = attrs.field(init=False)
    # definition id -> the latest live version seen; only a hint, checked by the INSERT
    # (bounded: a definition evicted reads its latest version again at its next start).
    _latest_versions: LruCache[str, str] = attrs.field(
        factory=lambda: LruCache(_MAX_VERSION_HINTS), init=False
    )
    _locks: dict[uuid.UUID, trio.Lock] = attrs.field(factory=dict, init=False)
    _commanded: set[uuid.UUID] = attrs.field(factory=set, init=False)
    admission: ActivationQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._waiters = TerminalWaiters(recheck=self.long_poll_recheck)
        self.admission = ActivationQueue(
            capacity=self.max_active, queue_limit=max(self.max_active, self.recovery_page)
        )
        self.timers = WakeTimers(
            wake=self.wake,
            limiter=trio.CapacityLimiter(self.wake_concurrency),
            on_fire=self.on_timer_fired,
            now=self.clock,
        )
        self.ports = InstancePorts(
            snapshots=self._snapshots,
            load=self._repository.load,
            interpreters=self._catalog,
            shapes=self._repository,
            http=self._http,
            processes=self._processes,
            retained_events=self._repository.retained_events,
            events=self.event_options,
            unmatched_retention=self.unmatched_retention,
            park_after=self.park_after,
            max_state_size=self.max_state_size,
            commit_every=self.commit_every,
            lease_epoch=self._leases.epoch_of,
            clock=self.clock,
            committed=self.committed,
            parked=self.parked,
            live=self.live,
            secrets=self.secrets,
            policy=self.policy,
            metrics=self.metrics,
            services=self.services,
            subflows=self._repository,
            wake=self.wake_instances,
            subflow_depth=self.subflow_depth,
        )

    # -- service --------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[InstanceRuntime] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Report ready, then recover the partitions' instances in the background, start
        queued activations as slots free and fire wake-ups until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._repository.run_batching)
            await nursery.start(self.timers.run)
            nursery.start_soon(self._dispatch, nursery)
            nursery.start_soon(self._drain_backlog)
            task_status.started(self)
            held = self._epochs()
            await self._recover_logged(frozenset(held))
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

    def abandon_runs(self) -> int:
        """Cancel every running instance's run without committing (the service stops), so
        stopping never waits for what workflows do; each resumes from its last commit where
        it runs next. Returns how many runs were cancelled."""
        count = self.live.abandon_all()
        if count:
            logger.info(
                "stopped the runs of %d workflow instances; they resume from their last commit",
                count,
            )
        return count

    def _epochs(self) -> dict[int, int]:
        return {p: lease.epoch for p, lease in self._leases.current().leases.items()}

    async def _recover_logged(self, partitions: frozenset[int]) -> None:
        try:
            # A cancel cascade that a crash interrupted ends first: those children stay put.
            self._descendants_cancelled(
                await self._repository.cancel_descendants(partitions=partitions)
            )
        except Exception as exc:  # the database may be away: recovery tries on its own
            logger.warning(
                "the cancel cascade of %d recovered partitions failed: %s: %s",
                len(partitions),
                type(exc).__name__,
                exc,
            )
        try:
            found = await self.recover(partitions)
        except Exception as exc:  # the database may be away: the next partition check retries
            logger.warning(
                "recovery of %d partitions failed: %s: %s", len(partitions), type(exc).__name__, exc
            )
            return
        if found:
            logger.info("recovered %d workflow instances in %d partitions", found, len(partitions))

    async def recover(self, partitions: frozenset[int], *, skip_existing: bool = False) -> int:
        """Queue the instances to run again (pending and running ones, waiting ones with
        events in their inbox), a page at a time, waiting for room in the queue; returns how
        many non-terminal instances were found. ``skip_existing`` skips instances that have
        an actor here (the backlog drain)."""
        after: uuid.UUID | None = None
        found = 0
        while partitions:
            read_at = self.activation_stamp()
            page = await self._repository.list_recoverable(
                partitions=partitions, after=after, limit=self.recovery_page
            )
            for item in page:
                found += 1
                run = recovery_run(item)
                instance_id = item.record.instance_id
                if run is None or (skip_existing and self._has_actor(instance_id)):
                    continue
                activation = run.activation
                if activation is not None and self.live.stopped_since(instance_id, read_at):
                    activation = None  # it ran since the page was read: read it again
                await self.admission.put(instance_id, activation)
            if len(page) < self.recovery_page:
                break
            after = page[-1].record.instance_id
        return found

    def _has_actor(self, instance_id: uuid.UUID) -> bool:
        """An actor of the instance is live or restarting here, or it waits in the queue."""
        return (
            instance_id in self.live
            or instance_id in self.admission
            or self._supervisor.child(str(instance_id)) is not None
        )

    async def _drain_backlog(self) -> None:
        """Run what overflowed the activation queue: read it back from the database in pages
        (durable: rows, inbox, timers), as often as the queue overflows."""
        while True:
            await self.admission.overflowed.wait()
            self.admission.clear_overflow()
            partitions = frozenset(self._epochs())
            try:
                found = await self.recover(partitions, skip_existing=True)
            except Exception as exc:  # the database may be away: try again shortly
                logger.warning("activation backlog drain failed: %s: %s", type(exc).__name__, exc)
                self.admission.overflowed.set()
                await trio.sleep(self.partition_check_every)
                continue
            logger.info("drained the activation backlog: %d instances read", found)

    def request_drain(self) -> None:
        """More instances need a run than were handed over (a large wake-up): drain them
        from the database."""
        self.admission.overflowed.set()

    async def _dispatch(self, nursery: trio.Nursery) -> None:
        """Start queued activations while slots are free, in arrival order."""
        while True:
            instance_id, activation, slot = await self.admission.take()
            nursery.start_soon(self._start_actor, instance_id, activation, slot)

    # -- starting and waking --------------------------------------------------------------

    async def start_instance(self, request: StartRequest) -> tuple[InstanceRecord, bool]:
        """Create (or, for a used idempotency key, find) an instance and start it.

        Raises ``DefinitionNotFound`` and ``InputInvalid``.

        The fast path reads nothing: the latest version of the definition is the one seen
        last (a hint), the input is checked against it, and the repository's batched create
        inserts the instance with other starts in one statement, only if that version is still
        the latest live one (or, when the request names a version, still live). Otherwise (the
        first start of a definition, a stale hint, a missing definition) the start reads the
        latest version and creates the instance on its own (``create_instance``).
        """
        definition_id = request.definition_id
        version = request.version or self._latest_versions.get(definition_id)
        if version is not None and self._repository.batching:
            interpreter = await self._catalog.interpreter(definition_id, version)
            problems = self._catalog.input_problems(
                definition_id, version, interpreter.workflow, request.input
            )
            if problems and request.version is not None:
                raise InputInvalid(definition_id, version, problems)
            if not problems:
                outcome = await self._repository.create_batched(
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
            version = await self._repository.latest_version(request.definition_id)
            self._latest_versions.put(request.definition_id, version)
        interpreter = await self._catalog.interpreter(request.definition_id, version)
        problems = self._catalog.input_problems(
            request.definition_id, version, interpreter.workflow, request.input
        )
        if problems:
            raise InputInvalid(request.definition_id, version, problems)
        record, created = await self._repository.create_instance(
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
        if record.partition in self._leases.current().partitions:
            # Never waits: beyond the cap the start queues (or overflows to the backlog that
            # the drain reads back); the instance is committed as pending either way.
            self.admission.offer(
                record.instance_id, RecoverableInstance(record=record, snapshot=None)
            )
            await trio.lowlevel.checkpoint()
            return
        await self._repository.notify_wake([record.instance_id])

    def _holds(self, instance_id: uuid.UUID) -> bool:
        """Whether this replica holds the instance's partition now (no I/O)."""
        return partition_of(instance_id) in self._leases.current().partitions

    async def wake(self, instance_id: uuid.UUID) -> None:
        """A parked instance is due: run it again from its snapshot (when this replica still
        holds its partition; otherwise its new owner fires the timer).

        Returns once the activation is queued (waiting for room in the activation queue, then
        overflowing to the backlog drain): the caller's wake-up slot is not held while the
        instance runs, since the cap on live actors (``max_active``) already bounds the runs,
        and waking instances together lets their actors load together (one crossing for a
        batch, ``InstanceLoader``)."""
        if not self._holds(instance_id):
            return
        await self.activate(instance_id)

    async def wake_instances(self, instance_ids: Sequence[uuid.UUID]) -> None:
        """Run instances whose work a commit made durable (children it created, a parent
        whose child ended): a live actor runs once more, an instance of this replica's
        partitions queues (without waiting: beyond the queue the backlog drain finds it),
        the owners of the others are notified. Never raises: the owners' wake-up sweep
        finds what a failed notification missed."""
        elsewhere = []
        for instance_id in instance_ids:
            actor = self.live.get(instance_id)
            if actor is not None and actor.run_again():
                continue
            if self._holds(instance_id):
                self.admission.offer(instance_id, None)
            else:
                elsewhere.append(instance_id)
        await trio.lowlevel.checkpoint()
        if not elsewhere:
            return
        try:
            await self._repository.notify_wake(elsewhere)
        except Exception as exc:  # the database may be away: the owners' sweep finds them
            logger.warning(
                "could not notify the owners of %d workflow instances to run: %s: %s",
                len(elsewhere),
                type(exc).__name__,
                exc,
            )

    def _descendants_cancelled(self, records: Sequence[InstanceRecord]) -> None:
        """The cascade of a cancel committed these: abandon their runs here (their stored
        status stands), wake their long polls, count their ends."""
        for record in records:
            actor = self.live.get(record.instance_id)
            if actor is not None:
                actor.abandon()
            self.timers.disarm(record.instance_id)
            if self.metrics is not None:
                self.metrics.ended(record.definition_id, str(InstanceStatus.CANCELLED))
            self.committed(record.instance_id, InstanceStatus.CANCELLED)
        if records:
            logger.info(
                "cancelled %d descendants of cancelled workflow instances",
                len(records),
                extra={"instance_ids": [str(r.instance_id) for r in records[:20]]},
            )

    def parked(self, instance_id: uuid.UUID, wake_at: datetime | None) -> None:
        """An instance parked (its timers are committed): arm its wake-up when it is near."""
        if wake_at is None:
            self.timers.disarm(instance_id)
        elif due_within(wake_at, self.clock(), self.timer_lookahead):
            self.timers.arm(instance_id, wake_at)

    def activation_stamp(self) -> int:
        """A stamp to take before reading activations from the database, for ``activate``'s
        ``read_at``."""
        return self.live.stamp()

    async def activate(
        self,
        instance_id: uuid.UUID,
        activation: RecoverableInstance | None = None,
        *,
        read_at: int | None = None,
        patience: float = _ACTIVATION_PATIENCE,
    ) -> None:
        """Have the instance run: an actor that is running already runs once more after its
        current run (an event may have arrived after it read its inbox); otherwise the
        activation queues for a slot, waiting up to ``patience`` seconds for room in the
        queue (then it overflows to the backlog drained from the database).

        ``read_at`` is the ``activation_stamp()`` taken before ``activation`` was read: when
        a run of the instance ended since, its last commit may be newer than the activation
        (whose run would be superseded, leaving what was delivered with it to the wake-up
        sweep), so the instance is read again when it starts. Without ``read_at`` the caller
        vouches that the activation is current."""
        actor = self.live.get(instance_id)
        if actor is not None and actor.run_again():
            await trio.lowlevel.checkpoint()
            return
        stale = read_at is not None and self.live.stopped_since(instance_id, read_at)
        await self.admission.put(instance_id, None if stale else activation, patience=patience)

    async def _start_actor(
        self, instance_id: uuid.UUID, activation: RecoverableInstance | None, slot: Slot
    ) -> None:
        """Start the instance's actor in ``slot`` (released when the actor stops for good, or
        at once when an actor of the instance exists already) and tell it to run."""
        try:
            async with self._guard(instance_id):
                actor = self.live.get(instance_id)
                if actor is not None:
                    if actor.run_again():
                        slot.release()
                        return
                    await actor.wait_gone()
                    # The run that just ended may have committed after ``activation`` was
                    # read: read the instance again.
                    activation = None
                if instance_id in self._commanded:
                    self._commanded.discard(instance_id)
                    activation = None  # a command changed it since: read it again
                ref, started = await start_instance_actor(
                    self._supervisor, self.ports, instance_id, activation
                )
            if started:
                ref.notify_stopped(slot.release)
            else:
                slot.release()
        except Exception as exc:  # the supervisor is stopping, or the start failed
            slot.release()
            logger.warning(
                "workflow instance %s was not started: %s: %s",
                instance_id,
                type(exc).__name__,
                exc,
                extra={"instance_id": str(instance_id)},
            )
        except BaseException:
            slot.release()
            raise

    # -- commands -------------------------------------------------------------------------

    async def command(self, instance_id: uuid.UUID, action: str) -> None:
        """``cancel``, ``suspend`` or ``resume``, committed when this returns; raises
        ``InstanceNotFound`` and ``InvalidStatusTransition``."""
        command = Command(action)
        transition = command_transition(command)
        if command is not Command.RESUME:
            actor = self.live.get(instance_id)
            if actor is not None:
                settled = await actor.interrupt(transition.status, patience=self.command_timeout)
                if settled:
                    current = await self._read_record(instance_id)
                    if current.status is InstanceStatus.CANCELLED:
                        self._descendants_cancelled(
                            await self._repository.cancel_descendants(parents=[instance_id])
                        )
                    if current.status == transition.status or current.terminal:
                        return
            # The run ignored cancellation, or crashed (and restarts) before it committed, or
            # the actor crash-loops: stop it, then commit the status here.
            await self._stop_actor(instance_id)
        descendants: tuple[InstanceRecord, ...] = ()
        async with self._guard(instance_id):
            self._commanded.add(instance_id)
            if command is Command.CANCEL:
                record, descendants = await self._repository.cancel_instance(
                    instance_id,
                    allowed_from=transition.allowed_from,
                    history_kind=transition.history_kind,
                )
            else:
                record = await self._repository.set_status(
                    instance_id,
                    transition.status,
                    allowed_from=transition.allowed_from,
                    history_kind=transition.history_kind,
                )
            if self.metrics is not None and transition.status.terminal:
                self.metrics.ended(record.definition_id, str(transition.status))
            if transition.status is not InstanceStatus.RUNNING:
                self.timers.disarm(instance_id)
            self.committed(instance_id, transition.status)
        self._descendants_cancelled(descendants)
        if transition.status.terminal and record.parent_awaits and record.parent_id is not None:
            await self.wake_instances([record.parent_id])  # the child's end is in its inbox
        if command is Command.RESUME:
            await self.activate(instance_id)

    async def _stop_actor(self, instance_id: uuid.UUID) -> None:
        """Stop the instance's actor if it has one (running, or restarting after a crash),
        bounded: one that ignores cancellation is abandoned after its shutdown timeout."""
        name = str(instance_id)
        if self._supervisor.child(name) is None:
            return
        with trio.move_on_after(_STOP_BOUND):
            with contextlib.suppress(ActorNotFound):
                await self._supervisor.stop_child(name)

    # -- waiting for the end --------------------------------------------------------------

    def committed(self, instance_id: uuid.UUID, status: InstanceStatus) -> None:
        """Called after a status is committed: wakes long polls on terminal states."""
        if status.terminal:
            self._waiters.ended(instance_id)

    def ended_elsewhere(self, payload: str) -> None:
        """Another replica's commit ended these instances (``storage.instances.ENDED_CHANNEL``,
        ids separated by commas): wake the long polls held here. A malformed id is skipped."""
        for text in payload.split(","):
            try:
                instance_id = uuid.UUID(text)
            except ValueError:
                continue
            self._waiters.ended(instance_id)

    async def wait_terminal(
        self,
        instance_id: uuid.UUID,
        seconds: float,
        read: Callable[[], Awaitable[InstanceRecord]] | None = None,
    ) -> InstanceRecord:
        """The instance once terminal, or as it is when ``seconds`` have passed.

        A terminal commit here wakes the wait at once; otherwise the instance is read again
        every ``long_poll_recheck`` seconds, with ``read`` (the API passes a read of the row
        alone, on its own pool) or else the repository's ``load``.
        """
        return await self._waiters.wait_terminal(
            instance_id, seconds, read or (lambda: self._read_record(instance_id))
        )

    async def _read_record(self, instance_id: uuid.UUID) -> InstanceRecord:
        return (await self._repository.load(instance_id)).record

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
