"""Leader election through PostgreSQL: one replica at a time runs an elected role.

One row of ``leader_leases`` per role (``'schedules'``: the schedule-firing loop) names the
leader, an ``epoch`` and an ``expires_at``. The rules, the same as the partition leases':

- The lease is held while ``leader_id`` is the holder and ``expires_at > now()`` (the database's
  clock, so the replicas' clocks do not matter).
- ``epoch`` goes up by one on every grant, including a grant to the previous leader (after it
  expired, was released, or after the leader itself stopped trusting it). It is the fencing
  token: every write of the leader starts its transaction with ``check_fence``, which takes a
  share lock on the row and fails unless the epoch still holds the lease. A takeover (an
  ``UPDATE`` of the row) therefore waits for the writes in flight, and the writes that come
  after it are refused.
- Renewal extends ``expires_at`` and keeps the epoch; an expired lease cannot be renewed, only
  acquired again (new epoch).

The leader trusts its lease locally only until ``request start + ttl - safety margin``, counted
from when the granting/renewing REQUEST was sent (the database set ``expires_at`` no earlier
than that, plus ``ttl``). A process that stalls (SIGSTOP, a long GC pause, a frozen VM) and
resumes therefore finds its local deadline passed and stops acting before anyone else can have
been granted the role; and one whose connection dies or whose renewal fails stops at once. No
session-held advisory lock is involved: a killed connection simply makes the next renewal fail,
and the fence settles any write that races with a takeover.

Candidate ids must be unique among the live candidates of a role (a restarted replica may reuse
its id: it takes the role back under a new epoch).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage import Connection, Database
from workflow_orchestrator.storage.scheduling import (
    LeaderGrant,
    acquire_leadership,
    check_fence,
    release_leadership,
    renew_leadership,
)

__all__ = [
    "SCHEDULES_ROLE",
    "LeaderLease",
    "LeaderStatistics",
    "Leadership",
    "LeadershipLost",
    "require_fence",
]

logger = logging.getLogger(__name__)

SCHEDULES_ROLE = "schedules"
_RELEASE_TIMEOUT = 5.0
_MIN_POLL = 0.02  # never poll the row faster than this while another candidate leads


class LeadershipLost(OrchestratorError, RuntimeError):
    """The caller no longer leads ``role`` (or its ``epoch`` was fenced): stop acting as leader."""

    def __init__(self, message: str, *, role: str, leader_id: str, epoch: int | None) -> None:
        super().__init__(message)
        self.role = role
        self.leader_id = leader_id
        self.epoch = epoch


async def require_fence(
    connection: Connection,
    role: str,
    leader_id: str,
    epoch: int,
    *,
    idle_timeout: float | None = None,
) -> None:
    """``check_fence``, raising ``LeadershipLost`` when fenced (which rolls back the caller's
    ``async with connection.transaction()`` block)."""
    if not await check_fence(connection, role, leader_id, epoch, idle_timeout=idle_timeout):
        raise LeadershipLost(
            f"{leader_id!r} no longer leads {role!r} under epoch {epoch}",
            role=role,
            leader_id=leader_id,
            epoch=epoch,
        )


@attrs.frozen(kw_only=True)
class Leadership:
    """One grant of a role: who holds it, its fencing ``epoch`` and when the database granted it.

    ``fence``/``require_fence`` check it inside a write transaction (asyncio side).
    """

    role: str
    leader_id: str
    epoch: int
    acquired_at: datetime

    async def fence(self, connection: Connection, *, idle_timeout: float | None = None) -> bool:
        """``check_fence`` for this grant."""
        return await check_fence(
            connection, self.role, self.leader_id, self.epoch, idle_timeout=idle_timeout
        )

    async def require_fence(
        self, connection: Connection, *, idle_timeout: float | None = None
    ) -> None:
        """``require_fence`` for this grant: raises ``LeadershipLost`` when fenced."""
        await require_fence(
            connection, self.role, self.leader_id, self.epoch, idle_timeout=idle_timeout
        )


@attrs.frozen(kw_only=True)
class LeaderStatistics:
    """What one candidate knows (no I/O).

    ``leader_id``/``epoch``: the holder and epoch last seen in the database (``None`` before the
    first answer or when the row was free); ``is_leader``: whether this candidate leads now;
    ``changes_total``: how many times this candidate became or stopped being leader;
    ``last_renewed_at``: the ``clock`` value at which the last successful grant or renewal was
    requested; ``failures_total``: requests that failed or timed out.
    """

    role: str
    candidate_id: str
    leader_id: str | None
    epoch: int | None
    is_leader: bool
    changes_total: int
    last_renewed_at: float | None
    failures_total: int


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.define(eq=False, kw_only=True)
class LeaderLease:
    """A candidate for ``role``: run ``run()`` in the background and ask ``current()``.

    ``ttl`` is the lease (``scheduler.distributed.leaderElectionInterval``); it is renewed every
    ``renew_every`` seconds (default ``ttl / 3``). Leadership is trusted locally until
    ``ttl - safety_margin`` (default ``ttl / 5``) after the request that granted or last renewed
    it was sent, by ``clock`` (monotonic seconds). ``on_change(is_leader)`` is called on every
    change the election loop sees (for metrics; keep it quick). ``current()`` is the authority:
    a leader whose process stalled is no longer current the moment it resumes, while its
    ``on_change(False)`` comes with the loop's next step.
    """

    database: Database
    role: str = SCHEDULES_ROLE
    candidate_id: str
    ttl: float = attrs.field(validator=_positive)
    renew_every: float | None = attrs.field(default=None, validator=_positive)
    safety_margin: float | None = attrs.field(default=None, validator=_positive)
    request_timeout: float | None = attrs.field(default=None, validator=_positive)
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[bool], None] | None = None

    _held: Leadership | None = attrs.field(init=False, default=None)
    _deadline: float = attrs.field(init=False, default=-math.inf)
    _last_epoch: int | None = attrs.field(init=False, default=None)
    _was_leader: bool = attrs.field(init=False, default=False)
    _seen_leader: str | None = attrs.field(init=False, default=None)
    _seen_epoch: int | None = attrs.field(init=False, default=None)
    _changes: int = attrs.field(init=False, default=0)
    _failures: int = attrs.field(init=False, default=0)
    _last_renewed_at: float | None = attrs.field(init=False, default=None)
    _gained: trio.Event = attrs.field(init=False, factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        if self.margin >= self.ttl:
            raise ValueError(f"safety_margin ({self.margin}) must be shorter than ttl ({self.ttl})")
        if self.period >= self.ttl - self.margin:
            raise ValueError(
                f"renew_every ({self.period}) must be shorter than ttl - safety_margin "
                f"({self.ttl - self.margin}), or the lease lapses between renewals"
            )

    @property
    def period(self) -> float:
        """Seconds between renewals (and between attempts while another candidate leads)."""
        return self.renew_every if self.renew_every is not None else self.ttl / 3

    @property
    def margin(self) -> float:
        """How much earlier than the database this candidate stops trusting its lease."""
        return self.safety_margin if self.safety_margin is not None else self.ttl / 5

    @property
    def timeout(self) -> float:
        """The bound of one grant/renew request."""
        return self.request_timeout if self.request_timeout is not None else self.period

    # --- what callers read (no I/O) -------------------------------------------------------

    def current(self) -> Leadership | None:
        """The grant held and still valid by the local deadline, else None (no I/O)."""
        held = self._held
        if held is None or self.clock() >= self._deadline:
            return None
        return held

    @property
    def is_leader(self) -> bool:
        return self.current() is not None

    def require(self) -> Leadership:
        """``current()``, raising ``LeadershipLost`` when this candidate does not lead now."""
        held = self.current()
        if held is None:
            raise LeadershipLost(
                f"{self.candidate_id!r} does not lead {self.role!r}",
                role=self.role,
                leader_id=self.candidate_id,
                epoch=self._last_epoch,
            )
        return held

    def valid_for(self) -> float:
        """Seconds the current leadership remains trusted locally (0 when not leader)."""
        if self.current() is None:
            return 0.0
        return max(0.0, self._deadline - self.clock())

    async def wait_leadership(self) -> Leadership:
        """Wait until this candidate leads; returns the grant."""
        while True:
            held = self.current()
            if held is not None:
                return held
            await self._gained.wait()

    def statistics(self) -> LeaderStatistics:
        """Counters and the last state seen (no I/O)."""
        return LeaderStatistics(
            role=self.role,
            candidate_id=self.candidate_id,
            leader_id=self._seen_leader,
            epoch=self._seen_epoch,
            is_leader=self.is_leader,
            changes_total=self._changes,
            last_renewed_at=self._last_renewed_at,
            failures_total=self._failures,
        )

    # --- the election loop --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Campaign until cancelled; ``task_status.started()`` after the first attempt.

        On cancellation the lease is released (shielded, at most 5 s) so another candidate can
        take over at once.
        """
        try:
            delay = await self._attempt()
            task_status.started()
            while True:
                await trio.sleep(delay)
                delay = await self._attempt()
        finally:
            self._lose("stopped", level=logging.INFO)
            with trio.move_on_after(_RELEASE_TIMEOUT, shield=True) as scope:
                try:
                    await self._release()
                except Exception as exc:  # the lease expires on its own; keep the real cause
                    logger.warning("releasing %s leadership failed: %s", self.role, exc)
            if scope.cancelled_caught:
                logger.warning("releasing %s leadership timed out; it will expire", self.role)

    async def _attempt(self) -> float:
        """One grant or renewal; returns how long to wait before the next one."""
        if self._held is not None and self.clock() < self._deadline:
            return await self._renew()
        if self._held is not None:
            self._lose("its lease ran out before a renewal succeeded")
        return await self._acquire()

    async def _renew(self) -> float:
        held = self._held
        assert held is not None
        started = self.clock()
        try:
            with trio.fail_after(self.timeout):
                renewed = await renew_leadership(
                    self.database, self.role, self.candidate_id, held.epoch, self.ttl
                )
        except Exception as exc:  # any failure: we cannot prove the lease is still ours
            self._failures += 1
            self._lose(f"renewal failed: {_describe(exc)}")
            return self.period
        if not renewed:
            self._lose("the lease expired or was taken over")
            return 0.0  # learn at once who holds it now (and take it back if it is free)
        self._extend(started)
        return self._next_renewal()

    async def _acquire(self) -> float:
        started = self.clock()
        role, me = self.role, self.candidate_id
        try:
            with trio.fail_after(self.timeout):
                answer = await acquire_leadership(self.database, role, me, self.ttl)
        except Exception as exc:
            self._failures += 1
            logger.warning("%s: acquiring %s leadership failed: %s", me, role, _describe(exc))
            return self.period
        if not isinstance(answer, LeaderGrant):
            if answer is None:
                return self.period
            self._seen_leader, self._seen_epoch = answer.leader_id, answer.epoch
            if answer.remaining is None:  # free again already (released between two statements)
                return _MIN_POLL
            return min(self.period, max(_MIN_POLL, answer.remaining + _MIN_POLL))
        self._held = Leadership(
            role=role, leader_id=me, epoch=answer.epoch, acquired_at=answer.granted_at
        )
        self._last_epoch = answer.epoch
        self._extend(started)
        if self.current() is None:  # the answer came after the lease could be trusted
            self._lose("the grant arrived too late to be trusted")
            return 0.0
        logger.info("%s leads %s (epoch %d)", me, role, answer.epoch)
        self._set_leader(True)
        self._gained.set()
        self._gained = trio.Event()
        return self._next_renewal()

    def _extend(self, requested_at: float) -> None:
        self._deadline = requested_at + self.ttl - self.margin
        self._last_renewed_at = requested_at
        assert self._held is not None
        self._seen_leader, self._seen_epoch = self.candidate_id, self._held.epoch

    def _next_renewal(self) -> float:
        return max(0.0, min(self.period, self._deadline - self.clock()))

    def _lose(self, reason: str, *, level: int = logging.WARNING) -> None:
        if self._held is None:
            return
        if self._was_leader:
            logger.log(
                level,
                "%s no longer leads %s (epoch %d): %s",
                self.candidate_id,
                self.role,
                self._held.epoch,
                reason,
            )
        self._held = None
        self._deadline = -math.inf
        self._set_leader(False)

    def _set_leader(self, leader: bool) -> None:
        if leader == self._was_leader:
            return
        self._was_leader = leader
        self._changes += 1
        if self.on_change is not None:
            try:
                self.on_change(leader)
            except Exception:  # a metrics hook must not break the election
                logger.exception("on_change callback of the %s leader lease failed", self.role)

    async def _release(self) -> None:
        epoch = self._last_epoch
        if epoch is None:
            return
        await release_leadership(self.database, self.role, self.candidate_id, epoch)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
