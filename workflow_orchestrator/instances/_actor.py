"""The actor of one running workflow instance.

It lives under ``/user/instances/<instance_id>`` only while the instance runs: it loads the
instance's last committed snapshot (or its input), runs the interpreter with durable effects
until the instance completes, faults or parks on a wait, and then stops. A wait's timer, an
event or a command brings it back as a fresh actor from the snapshot.

A value PostgreSQL cannot store ends the instance faulted, without the value (see
``_effects``), never a crash. A bug in our code (an exception that is not a workflow error)
crashes the actor; its supervisor
restarts it and it resumes from the last committed snapshot. A snapshot refused because a
command changed the instance meanwhile (``SnapshotSuperseded``: a forced cancel or suspend of a
run that did not stop in time) stops the actor quietly: the command's status stands. After
``MAX_ATTEMPTS`` restarts the instance is marked faulted with the error, instead of being
retried forever.

Everything it uses of the service comes in its ``InstancePorts``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from functools import partial
from typing import Any

import attrs
import trio

from workflow_orchestrator.actors import Actor, ActorContext, ActorRef, MailboxFull, StopReason
from workflow_orchestrator.dsl import Interpreter
from workflow_orchestrator.dsl.runtime import ExecutionState
from workflow_orchestrator.errors import exception_leaves
from workflow_orchestrator.instances._effects import CommittedWithout, DurableEffects, Parked
from workflow_orchestrator.instances._fault import fault_instance
from workflow_orchestrator.instances._ports import InstancePorts
from workflow_orchestrator.storage import LeaseLost, SnapshotSuperseded
from workflow_orchestrator.storage.instances import InstanceStatus, RecoverableInstance
from workflow_orchestrator.supervision import ActorSpec, Restart, Supervisor

__all__ = ["MAX_ATTEMPTS", "InstanceActor", "Recover", "Run", "start_instance_actor"]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
_INTERRUPT_TIMEOUT = 30.0


@attrs.frozen(kw_only=True)
class Run:
    """Run (or resume) the instance; ``activation`` saves a database read when known."""

    activation: RecoverableInstance | None = None


@attrs.frozen(kw_only=True)
class Recover:
    """Sent to itself by a restarted actor: resume, or give up after ``MAX_ATTEMPTS``."""

    attempt: int


class InstanceActor(Actor[Any]):
    """Drives one instance; see the module docstring."""

    def __init__(self, ports: InstancePorts, instance_id: uuid.UUID) -> None:
        self.ports = ports
        self.instance_id = instance_id
        self._scope: trio.CancelScope | None = None
        self._requested: InstanceStatus | None = None  # cancelled or suspended
        self._settled = trio.Event()
        self._gone = trio.Event()
        self._accepting = True  # False once the last run has ended
        self._again = False
        self._abandoned = False  # the service stops: end without committing

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        self.ports.live.add(self.instance_id, self)
        if ctx.restart_count:
            # Ahead of what is queued and past the mailbox's capacity: a full mailbox must
            # not refuse the recovery (the restart would fail for ever, never faulting).
            ctx.tell_self_first(Recover(attempt=ctx.restart_count))

    async def on_stop(self, ctx: ActorContext[Any], reason: StopReason) -> None:
        self._accepting = False
        self.ports.live.discard(self.instance_id, self)
        self._settled.set()
        self._gone.set()

    def run_again(self) -> bool:
        """Run once more after the current run (False: too late, the actor is ending)."""
        if not self._accepting:
            return False
        self._again = True
        return True

    async def wait_gone(self) -> None:
        """Wait until the actor has stopped."""
        await self._gone.wait()

    async def receive(self, ctx: ActorContext[Any], message: Any) -> None:
        if isinstance(message, Recover):
            failure = ctx.last_failure
            if message.attempt >= MAX_ATTEMPTS:
                self._accepting = False
                try:
                    await fault_instance(self.ports, self.instance_id, failure, message.attempt)
                except Exception as exc:  # the actor stops whatever happened
                    # Never a crash loop: the instance stays as committed; recovery or a
                    # command deals with it later.
                    logger.error(
                        "workflow instance %s could not be marked faulted after %d runtime "
                        "failures: %s: %s",
                        self.instance_id,
                        message.attempt,
                        type(exc).__name__,
                        exc,
                        extra={"instance_id": str(self.instance_id)},
                    )
                finally:
                    self._settled.set()
                ctx.stop()
                return
            logger.warning(
                "resuming workflow instance %s after a crash (attempt %d of %d)",
                self.instance_id,
                message.attempt,
                MAX_ATTEMPTS,
                extra={"instance_id": str(self.instance_id)},
            )
            await self._run(None)
        elif isinstance(message, Run) and not self._abandoned:
            await self._run(message.activation)
        while self._again and self._requested is None and not self._abandoned:
            self._again = False
            self._settled = trio.Event()
            await self._run(None)
        self._accepting = False
        ctx.stop()

    async def interrupt(
        self, status: InstanceStatus, *, patience: float = _INTERRUPT_TIMEOUT
    ) -> bool:
        """Stop the run and record ``status`` (cancelled or suspended); wait until committed.

        Returns False when the run did not settle within ``patience`` seconds (it ignores
        cancellation): the caller then stops the actor and commits the status itself.
        """
        self._requested = status
        if self._scope is not None:
            self._scope.cancel()
        with trio.move_on_after(patience):
            await self._settled.wait()
            return True
        return False

    def abandon(self) -> None:
        """Cancel the run without committing anything (the service stops, whatever the
        workflow does): the instance resumes from its last commit where it runs next."""
        self._abandoned = True
        self._accepting = False
        if self._scope is not None:
            self._scope.cancel()

    async def _run(self, activation: RecoverableInstance | None) -> None:
        ports = self.ports
        try:
            if activation is None:
                activation = await ports.load(self.instance_id)
            record = activation.record
            if record.terminal or record.status == InstanceStatus.SUSPENDED:
                return
            interpreter = await ports.interpreters.interpreter(
                record.definition_id, record.definition_version
            )
            saved = (activation.snapshot or {}).get("state")
            if saved:
                state = ExecutionState.from_json(saved)
                if state.status in (InstanceStatus.WAITING, InstanceStatus.SUSPENDED):
                    state.status = InstanceStatus.RUNNING
            else:
                state = interpreter.new_state(record.input, instance_id=str(self.instance_id))
            effects = DurableEffects(
                ports=ports,
                instance_id=self.instance_id,
                partition=record.partition,
                lease_epoch=ports.lease_epoch(record.partition),
                version=record.snapshot_version,
                namespace=interpreter.workflow.namespace,
                definition=record.definition_id,
                committed_status=record.status,
                parent_id=record.parent_id if record.parent_awaits else None,
                depth=record.subflow_depth,
            )
            effects.start_from(
                state,
                inbox=activation.inbox,
                waiting=record.status == InstanceStatus.WAITING,
                resumed=bool(saved),
                listening=(activation.snapshot or {}).get("listening") or "",
            )
            await self._drive(interpreter, effects, state)
        except* CommittedWithout:
            # A commit held a value PostgreSQL cannot store: the instance ended without it
            # (committed and logged by the effects); nothing runs on.
            pass
        except* SnapshotSuperseded as superseded:
            # A command committed a status meanwhile (a forced cancel or suspend while this
            # run ignored cancellation), or the instance ended: that status stands; this run
            # stops without a crash, and long polls see the committed status.
            logger.warning(
                "workflow instance %s stopped here: %s",
                self.instance_id,
                exception_leaves(superseded)[0],
                extra={"instance_id": str(self.instance_id)},
            )
        except* LeaseLost as lost:
            # Another replica owns the partition now and runs the instance from its snapshot.
            logger.warning(
                "workflow instance %s stopped here: %s",
                self.instance_id,
                exception_leaves(lost)[0],
                extra={"instance_id": str(self.instance_id)},
            )
        finally:
            self._settled.set()

    async def _drive(
        self, interpreter: Interpreter, effects: DurableEffects, state: ExecutionState
    ) -> None:
        parked: Parked | None = None
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._requested is not None or self._abandoned:
                scope.cancel()
            try:
                await interpreter.resume(effects, state)
            except* Parked as group:
                parked = next(e for e in exception_leaves(group) if isinstance(e, Parked))
        self._scope = None
        if self._abandoned and scope.cancelled_caught:
            return  # the last commit stands
        if self._requested is not None and scope.cancelled_caught:
            await effects.commit_final(self._requested, state)
        elif parked is not None:
            self.ports.parked(self.instance_id, parked.wake_at)
        else:
            await effects.flush()


async def start_instance_actor(
    supervisor: Supervisor,
    ports: InstancePorts,
    instance_id: uuid.UUID,
    activation: RecoverableInstance | None = None,
) -> tuple[ActorRef[Any], bool]:
    """Start the actor of ``instance_id`` under ``supervisor`` (transient: restarted after a
    crash, not after it stops) unless it exists already (running, or restarting after a
    crash), and tell it to run; returns its ref and whether a new actor was started."""
    name = str(instance_id)
    spec = ActorSpec[Any](
        name=name,
        factory=partial(InstanceActor, ports, instance_id),
        restart=Restart.TRANSIENT,
        mailbox_capacity=4,
        shutdown_timeout=10.0,
    )
    before = supervisor.child(name)
    ref = await supervisor.get_or_start_child(spec)
    started = supervisor.child(name) is not before
    with contextlib.suppress(MailboxFull):
        # A full mailbox holds runs already; each run reads the instance afresh.
        ref.tell_nowait(Run(activation=activation))
    return ref, started
