"""The actor cell: mailbox, message loop and lifecycle of one actor.

Invariants that keep an idle actor cheap (a few hundred bytes, no task, no channel):

- The mailbox is a bounded ``deque`` created on the first message, not a memory channel.
- The message loop is a Trio task started in the supervisor's nursery only when a message
  arrives for an actor that has none running, and it ends when the mailbox is empty. There is
  at most one such task per actor, so messages are handled one at a time, in order.
- Senders blocked by a full mailbox park on a ``ParkingLot`` created on first need.
- ``ask`` replies wake the asking task directly (``wait_task_rescheduled``), no channel.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import outcome
import trio

from workflow_orchestrator.actors._errors import ActorStopped, AskFailed, MailboxFull
from workflow_orchestrator.actors._lifecycle import (
    LifecycleState,
    StopKind,
    StopReason,
    Terminated,
)
from workflow_orchestrator.actors._record import ChildRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from workflow_orchestrator.actors._actor import Actor
    from workflow_orchestrator.actors._ref import ActorRef
    from workflow_orchestrator.actors._system import ActorSystem
    from workflow_orchestrator.supervision._spec import ActorSpec
    from workflow_orchestrator.supervision._supervisor import Supervisor

logger = logging.getLogger(__name__)

M = TypeVar("M")

# The message loop yields to the scheduler after this many messages handled back to back, so
# a busy actor whose handler never blocks cannot starve the others.
_CHECKPOINT_EVERY = 32
# After a forced cancel, how long to wait for the message loop to unwind before giving up.
_CANCEL_GRACE = 1.0

_ACCEPTING = frozenset(
    {
        LifecycleState.STARTING,
        LifecycleState.RUNNING,
        LifecycleState.RESTARTING,
        LifecycleState.PASSIVATED,
    }
)
_RUNNABLE = frozenset({LifecycleState.RUNNING, LifecycleState.PASSIVATED})


class _Ask:
    """An ``ask`` in the mailbox: the message and the way back to the asking task."""

    __slots__ = ("abandoned", "message", "result", "task")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.task: trio.lowlevel.Task | None = None
        self.result: outcome.Outcome[Any] | None = None
        self.abandoned = False

    def reply(self, result: outcome.Outcome[Any]) -> None:
        if self.task is not None:
            trio.lowlevel.reschedule(self.task, result)
            self.task = None
        elif not self.abandoned:
            self.result = result

    async def wait(self) -> Any:
        if self.result is not None:
            await trio.lowlevel.checkpoint()
            return self.result.unwrap()
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            self.abandoned = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


def message_type(message: object) -> str:
    if type(message) is _Ask:
        message = message.message
    return type(message).__name__


class ActorContext(ChildRecord, Generic[M]):
    """What an actor knows about itself; passed to every hook. Created by the runtime.

    ``path``/``name`` identify the actor, ``self_ref`` is its own ``ActorRef``, ``system`` the
    ``ActorSystem``. ``stop()`` and ``passivate()`` take effect after the current message;
    ``watch(ref)`` delivers a ``Terminated`` message when ``ref`` stops for good.
    """

    __slots__ = (
        "actor",
        "capacity",
        "idle_event",
        "in_heap",
        "last_active",
        "mailbox",
        "passivate_requested",
        "running",
        "scope",
        "senders",
        "stop_requested",
        "transition",
        "watching",
    )

    spec: ActorSpec[M]

    def __init__(self, supervisor: Supervisor, spec: ActorSpec[M]) -> None:
        super().__init__(supervisor, spec)
        self.actor: Actor[M] | None = None
        self.capacity = spec.mailbox_capacity
        self.mailbox: deque[Any] | None = None
        self.running = False
        self.senders: trio.lowlevel.ParkingLot | None = None
        self.scope: trio.CancelScope | None = None
        self.idle_event: trio.Event | None = None
        self.transition: trio.Event | None = None  # set while passivation runs on_stop
        self.stop_requested = False
        self.passivate_requested = False
        self.last_active = self.started_at
        self.in_heap = False
        self.watching: dict[ChildRecord, Callable[[StopReason], None]] | None = None

    @property
    def kind(self) -> str:
        return "actor"

    # -- public context API -------------------------------------------------------------

    @property
    def self_ref(self) -> ActorRef[M]:
        from workflow_orchestrator.actors._ref import ActorRef

        return ActorRef(self)

    @property
    def system(self) -> ActorSystem:
        return self.supervisor.system

    def stop(self) -> None:
        """Stop this actor after the current message (a normal exit, as OTP's ``stop``)."""
        self.stop_requested = True

    def passivate(self) -> None:
        """Leave memory after the current message; the next message re-activates it."""
        self.passivate_requested = True

    def watch(self, ref: ActorRef[Any]) -> None:
        """Receive ``Terminated(path, reason)`` once ``ref``'s actor stops for good."""
        target = ref._cell
        if self.watching is None:
            self.watching = {}
        if target in self.watching:
            return

        def notify(reason: StopReason) -> None:
            if self.watching is not None:
                self.watching.pop(target, None)
            if self.state in _ACCEPTING:
                self.enqueue(Terminated(path=target.path, reason=reason), force=True)

        self.watching[target] = notify
        target.add_watcher(notify)

    def unwatch(self, ref: ActorRef[Any]) -> None:
        """Stop watching ``ref``; no ``Terminated`` is delivered for it afterwards."""
        target = ref._cell
        if self.watching is not None and (notify := self.watching.pop(target, None)):
            target.remove_watcher(notify)

    # -- mailbox ------------------------------------------------------------------------

    def enqueue(self, message: object, *, force: bool = False) -> None:
        """Append without blocking; raise if stopped or (unless ``force``) full."""
        if self.state not in _ACCEPTING:
            raise ActorStopped(self.path, message_type(message))
        mailbox = self.mailbox
        if mailbox is None:
            mailbox = self.mailbox = deque()
        elif len(mailbox) >= self.capacity and not force:
            raise MailboxFull(self.path, self.capacity, message_type(message))
        mailbox.append(message)
        if not self.running and self.state in _RUNNABLE:
            self.schedule()

    async def put(self, message: object) -> None:
        """Append, waiting for space; a checkpoint whether or not it waits."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self.state not in _ACCEPTING:
                raise ActorStopped(self.path, message_type(message))
            if self.mailbox is None or len(self.mailbox) < self.capacity:
                self.enqueue(message)
                break
            if self.senders is None:
                self.senders = trio.lowlevel.ParkingLot()
            await self.senders.park()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def schedule(self) -> None:
        self.running = True
        self.supervisor.spawn_task(self._run_messages)

    def fail_pending(self) -> None:
        """Final clean-up of a stopped actor: fail waiting asks, wake blocked senders and
        stop watching others (so their watcher lists do not keep this cell alive)."""
        watching, self.watching = self.watching, None
        for target, notify in (watching or {}).items():
            target.remove_watcher(notify)
        mailbox, self.mailbox = self.mailbox, None
        for message in mailbox or ():
            if type(message) is _Ask:
                message.reply(outcome.Error(ActorStopped(self.path, message_type(message))))
        if self.senders is not None:
            self.senders.unpark_all()

    # -- message loop -------------------------------------------------------------------

    async def _run_messages(self) -> None:
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                await self._handle_messages()
        finally:
            self.scope = None
            self.running = False
            if self.idle_event is not None:
                self.idle_event.set()
                self.idle_event = None
        if self.state is not LifecycleState.RUNNING:
            return
        if self.stop_requested:
            self.state = LifecycleState.STOPPING
            self.supervisor.child_exited(self, self.generation, None)
        elif self.passivate_requested:
            self.supervisor.spawn_task(self.passivate_now)
        elif self.mailbox:
            # Messages arrived while the last handler ran its final checkpoint.
            self.schedule()
        else:
            # An empty deque still costs ~600 bytes; idle actors should not keep one.
            self.mailbox = None
            if self.spec.passivate_after is not None:
                self.last_active = trio.current_time()
                self.supervisor.note_idle(self)

    async def _handle_messages(self) -> None:
        if self.transition is not None:
            await self.transition.wait()
        if self.actor is None:
            if self.state is not LifecycleState.PASSIVATED:
                return
            if not await self._activate():
                return
        actor = self.actor
        assert actor is not None
        mailbox = self.mailbox
        if mailbox is None:
            return
        handled = 0
        while mailbox and self.state is LifecycleState.RUNNING:
            message = mailbox.popleft()
            if self.senders:
                self.senders.unpark()
            try:
                if type(message) is _Ask:
                    value = await actor.receive(self, message.message)
                    message.reply(outcome.Value(value))
                else:
                    await actor.receive(self, message)
            except Exception as exc:
                self._crashed(exc, message)
                return
            if self.stop_requested or self.passivate_requested:
                return
            handled += 1
            if handled % _CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()

    async def _activate(self) -> bool:
        """Re-create the actor of a passivated cell (virtual-actor style)."""
        self.state = LifecycleState.STARTING
        try:
            actor = self.spec.factory()
            await actor.on_start(self)
        except Exception as exc:
            self._crashed(exc, None)
            return False
        if self.state is not LifecycleState.STARTING:
            # Stopped while on_start ran; the stopper finds no actor, so stop this one here.
            await self.call_on_stop(actor, StopReason(kind=StopKind.SHUTDOWN))
            return False
        self.actor = actor
        self.state = LifecycleState.RUNNING
        return True

    def _crashed(self, exc: Exception, message: object) -> None:
        if type(message) is _Ask:
            error = AskFailed(self.path, message_type(message), exc)
            error.__cause__ = exc
            message.reply(outcome.Error(error))
        if self.state in (LifecycleState.RUNNING, LifecycleState.STARTING):
            self.state = LifecycleState.RESTARTING  # else a stop is already under way
        self.supervisor.child_exited(self, self.generation, exc)

    # -- stopping -----------------------------------------------------------------------

    async def passivate_now(self) -> None:
        """Drop the actor instance of an idle cell; the cell stays, tells re-activate it."""
        self.passivate_requested = False
        actor = self.actor
        if actor is None or self.state is not LifecycleState.RUNNING or self.running:
            return
        if self.mailbox:
            self.schedule()  # a message arrived since the request; passivate later
            return
        self.actor = None
        self.state = LifecycleState.PASSIVATED
        self.mailbox = None  # empty; an idle deque is most of an idle actor's memory
        self.transition = done = trio.Event()
        try:
            await self.call_on_stop(actor, StopReason(kind=StopKind.PASSIVATION))
        finally:
            self.transition = None
            done.set()

    async def wait_quiet(self, deadline: float) -> None:
        """Let the current message finish until ``deadline``, then cancel the loop."""
        if self.running:
            idle = self.idle_event = self.idle_event or trio.Event()
            with trio.move_on_at(deadline, shield=True):
                await idle.wait()
            if self.running:
                if self.scope is not None:
                    self.scope.cancel()
                with trio.move_on_at(self.deadline_in(_CANCEL_GRACE), shield=True):
                    await idle.wait()
                if self.running:
                    logger.warning(
                        "actor %s ignored cancellation while stopping",
                        self.path,
                        extra={"actor_path": self.path},
                    )
        if self.transition is not None:
            with trio.move_on_at(deadline, shield=True):
                await self.transition.wait()

    async def call_on_stop(
        self, actor: Actor[M], reason: StopReason, deadline: float | None = None
    ) -> None:
        """Run ``on_stop`` shielded and bounded; log (never raise) its failures."""
        if deadline is None:
            deadline = self.deadline_in(self.spec.shutdown_timeout)
        with trio.move_on_at(deadline, shield=True) as scope:
            try:
                await actor.on_stop(self, reason)
            except Exception:
                logger.exception(
                    "on_stop of actor %s failed",
                    self.path,
                    extra={"actor_path": self.path},
                )
        if scope.cancelled_caught:
            logger.warning(
                "on_stop of actor %s exceeded its shutdown_timeout of %gs",
                self.path,
                self.spec.shutdown_timeout,
                extra={"actor_path": self.path},
            )

    def mailbox_depth(self) -> int:
        return len(self.mailbox) if self.mailbox is not None else 0
