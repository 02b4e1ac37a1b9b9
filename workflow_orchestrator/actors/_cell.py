"""``ActorCell``: the child record of an actor: mailbox, message loop and life cycle.

Invariants that keep an idle actor cheap (a few hundred bytes, no task, no channel):

- The mailbox is a bounded ``deque`` created on the first message, not a memory channel.
- The message loop is a Trio task started in the parent's nursery only when a message
  arrives for an actor that has none running, and it ends when the mailbox is empty. There is
  at most one such task per actor, so messages are handled one at a time, in order.
- Senders blocked by a full mailbox park on a ``ParkingLot`` created on first need.
- ``ask`` replies wake the asking task directly (see ``_messages``), no channel.
- The ``ActorContext`` handed to the actor's hooks is made per hook call and per run of the
  message loop, never stored and never made per message.

The cell knows its supervisor only as a ``Parent`` (see ``_parent``): it reports exits and
idleness and asks for tasks; every restart decision is the parent's.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import outcome
import trio

from workflow_orchestrator.actors._context import ActorContext
from workflow_orchestrator.actors._errors import ActorStopped, AskFailed, MailboxFull
from workflow_orchestrator.actors._lifecycle import (
    LifecycleState,
    StopKind,
    StopReason,
    Terminated,
)
from workflow_orchestrator.actors._messages import Ask, message_type
from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.actors._ref import ActorRef

if TYPE_CHECKING:
    from workflow_orchestrator.actors._actor import Actor
    from workflow_orchestrator.actors._parent import Parent
    from workflow_orchestrator.actors._spec import ActorSpec

logger = logging.getLogger(__name__)

M = TypeVar("M")

# The message loop yields to the scheduler after this many messages handled back to back, so
# a busy actor whose handler never blocks cannot starve the others.
_CHECKPOINT_EVERY = 32
# After a forced cancel, how long to wait for the message loop to unwind before giving up.
_CANCEL_GRACE = 1.0
_SHUTDOWN = StopReason(kind=StopKind.SHUTDOWN)
_PASSIVATION = StopReason(kind=StopKind.PASSIVATION)

_ACCEPTING = frozenset(
    {
        LifecycleState.STARTING,
        LifecycleState.RUNNING,
        LifecycleState.RESTARTING,
        LifecycleState.PASSIVATED,
    }
)
_RUNNABLE = frozenset({LifecycleState.RUNNING, LifecycleState.PASSIVATED})


class ActorCell(ChildRecord, Generic[M]):
    """The record of one actor child; its ``ActorRef``s and contexts point here."""

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

    kind: ClassVar[str] = "actor"
    spec: ActorSpec[M]

    def __init__(self, parent: Parent, spec: ActorSpec[M]) -> None:
        super().__init__(parent, spec)
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

    # -- life cycle (called by the parent) ------------------------------------------------

    async def start(self) -> ActorRef[M]:
        """Make a fresh actor and run its ``on_start``; queued messages then run."""
        generation = self.begin_start()
        self.stop_requested = self.passivate_requested = False
        actor = self.spec.factory()
        await actor.on_start(ActorContext(self))
        if self.generation != generation:
            # Stopped while on_start ran; the stopper found no actor, so stop this one here.
            await self.call_on_stop(actor, _SHUTDOWN)
            return ActorRef(self)
        self.actor = actor
        self.state = LifecycleState.RUNNING
        if self.mailbox and not self.running:
            self.schedule()
        await trio.lowlevel.checkpoint()
        return ActorRef(self)

    async def stop(self, reason: StopReason) -> None:
        """Let the current message finish until the deadline, cancel it, run ``on_stop``."""
        deadline = self.begin_stop()
        await self.wait_quiet(deadline)
        actor, self.actor = self.actor, None
        if actor is not None:
            await self.call_on_stop(actor, reason, deadline)

    async def terminate(self, reason: StopReason) -> None:
        """Run ``on_stop`` of the actor instance that crashed, before its restart."""
        actor, self.actor = self.actor, None
        if actor is not None:
            await self.call_on_stop(actor, reason)

    def mark_stopped(self, reason: StopReason) -> None:
        """Fail what still waits on this actor, then stop for good (watchers are told)."""
        self.fail_pending()
        super().mark_stopped(reason)

    # -- views ------------------------------------------------------------------------------

    def ref(self) -> ActorRef[M]:
        return ActorRef(self)

    def mailbox_figures(self) -> tuple[int | None, int | None]:
        return len(self.mailbox) if self.mailbox is not None else 0, self.capacity

    def leftovers(self) -> list[str]:
        found = super().leftovers()
        if self.mailbox:
            found.append(f"{self.path} has {len(self.mailbox)} queued messages")
        if self.senders:
            found.append(f"{self.path} has {len(self.senders)} blocked senders")
        if self.running or self.scope is not None:
            found.append(f"{self.path} still has a message loop")
        return found

    # -- death watch ------------------------------------------------------------------------

    def watch(self, target: ChildRecord) -> None:
        """Deliver ``Terminated(path, reason)`` to this actor once ``target`` stops for good."""
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

    def unwatch(self, target: ChildRecord) -> None:
        """Stop watching ``target``; no ``Terminated`` is delivered for it afterwards."""
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

    def enqueue_first(self, message: object) -> None:
        """Put ``message`` at the head of the mailbox, past its capacity (a system message
        that must not be lost to a full mailbox, e.g. a restarted actor's recovery)."""
        if self.state not in _ACCEPTING:
            raise ActorStopped(self.path, message_type(message))
        if self.mailbox is None:
            self.mailbox = deque()
        self.mailbox.appendleft(message)
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
        """Start the message loop in the parent's nursery."""
        self.running = True
        self.parent.spawn_task(self._run_messages)

    def fail_pending(self) -> None:
        """Final clean-up of a stopped actor: fail waiting asks, wake blocked senders and
        stop watching others (so their watcher lists do not keep this cell alive)."""
        watching, self.watching = self.watching, None
        for target, notify in (watching or {}).items():
            target.remove_watcher(notify)
        mailbox, self.mailbox = self.mailbox, None
        for message in mailbox or ():
            if type(message) is Ask:
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
            self.parent.child_exited(self, self.generation, None)
        elif self.passivate_requested:
            self.parent.spawn_task(self.passivate_now)
        elif self.mailbox:
            # Messages arrived while the last handler ran its final checkpoint.
            self.schedule()
        else:
            # An empty deque still costs ~600 bytes; idle actors should not keep one.
            self.mailbox = None
            if self.spec.passivate_after is not None:
                self.last_active = trio.current_time()
                self.parent.note_idle(self)

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
        ctx = ActorContext(self)
        handled = 0
        while mailbox and self.state is LifecycleState.RUNNING:
            message = mailbox.popleft()
            if self.senders:
                self.senders.unpark()
            try:
                if type(message) is Ask:
                    value = await actor.receive(ctx, message.message)
                    message.reply(outcome.Value(value))
                else:
                    await actor.receive(ctx, message)
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
            await actor.on_start(ActorContext(self))
        except Exception as exc:
            self._crashed(exc, None)
            return False
        if self.state is not LifecycleState.STARTING:
            # Stopped while on_start ran; the stopper finds no actor, so stop this one here.
            await self.call_on_stop(actor, _SHUTDOWN)
            return False
        self.actor = actor
        self.state = LifecycleState.RUNNING
        return True

    def _crashed(self, exc: Exception, message: object) -> None:
        if type(message) is Ask:
            error = AskFailed(self.path, message_type(message), exc)
            error.__cause__ = exc
            message.reply(outcome.Error(error))
        if self.state in (LifecycleState.RUNNING, LifecycleState.STARTING):
            self.state = LifecycleState.RESTARTING  # else a stop is already under way
        self.parent.child_exited(self, self.generation, exc)

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
            await self.call_on_stop(actor, _PASSIVATION)
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
                await actor.on_stop(ActorContext(self), reason)
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
