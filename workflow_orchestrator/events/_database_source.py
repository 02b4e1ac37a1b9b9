"""The database event source: CloudEvents that producers write into the ``events`` table.

Producer API
------------

A producer publishes one CloudEvent in structured JSON form with the SQL function
``workflow_publish_event(jsonb)`` (schema migration V003); it returns the event's sequence
number and commits with the producer's own transaction, so an event can be published
atomically with the business change that caused it::

    SELECT workflow_publish_event(
        '{"specversion": "1.0", "id": "1", "source": "/shop", "type": "order.placed",
          "data": {"orderId": "A-17", "total": 42.5}}'::jsonb
    );

The function checks what CloudEvents 1.0 requires (a JSON object whose ``specversion`` is
``"1.0"`` and whose ``id``, ``source`` and ``type`` are non-empty strings) and raises a clear
SQL error otherwise (``the CloudEvent attribute "id" is missing or not a non-empty string``),
so a producer learns of a broken event at once. Rows inserted directly
(``INSERT INTO events (event) VALUES (...)``) are accepted too; rows that turn out not to be
valid CloudEvents are moved to ``event_dead_letters`` (``source_kind`` ``'database'``, with the
reason) instead of being routed. Events with the same ``source`` + ``id`` are deduplicated by
the router, so a producer may safely publish again after an uncertain commit.

How the source works
--------------------

``DatabaseEventSource.run`` keeps a dedicated connection that ``LISTEN``s on
``workflow_events`` (a statement trigger on ``events`` notifies it on every insert) and loops:

1. claim up to ``batch_size`` rows in ``event_seq`` order in ONE statement
   (``storage.events.claim_events``, which skips rows locked by another claim): the claim
   (``claimed_by``/``claimed_until``) lasts ``claim_ttl`` seconds, so the rows of a replica
   that died are claimed by another one once it expires;
2. parse each row with the CloudEvents parser; invalid rows are dead-lettered and deleted in one
   statement and logged at WARNING with their sequence and the reason;
3. hand the valid events to ``Router.route(events, source="database", consume=...)``; the
   ``consume`` step deletes exactly the claimed rows INSIDE the routing transaction, so an event
   is deleted if and only if its routing committed. If the claim was lost meanwhile (it expired
   and another replica claimed the rows) the delete finds fewer rows and raises `ClaimLost`,
   which rolls the routing back: the other replica routes them;
4. when PostgreSQL refuses the batch because of one event's data (``_refusals``: an id too
   long for its index, a value out of range), retrying it would block the table for ever: the
   batch's events are routed one at a time (each deleting its own row in its transaction), an
   event refused alone is moved to ``event_dead_letters`` with the refusal as its reason (a
   WARNING names its sequence, its id and source, and the reason), and the others are routed.

It loops at once while batches come back full (draining a backlog without waiting for
notifications), else waits for a notification or ``poll_interval``, whichever comes first. A
lost notification (or a lost LISTEN connection, which is re-established with backoff) therefore
only delays delivery. A failed claim or routing is logged and retried with bounded exponential
backoff (0.1 s doubling up to 5 s); the failed batch's rows keep this owner's claim, which the
next attempt of this source takes over at once (or another replica after ``claim_ttl``).

Ordering and ownership: one source routes its batches one after the other in ``event_seq``
order. Several replicas (each with its own ``owner_id``) share the table without routing a row
twice, but their batches interleave, so there is no global order across replicas.
``owner_id`` must be unique among running sources (the replica id, held by
``hold_owner_id``): a source re-claims rows claimed under its own id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.events._cloudevents import MAX_EVENT_SIZE, InvalidEvent, parse_json_event
from workflow_orchestrator.events._refusals import REFUSED_BY_DATA, describe_event, refusal_reason
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.retrying import backoff_step
from workflow_orchestrator.storage import (
    DATABASE_ERRORS,
    Database,
    LeaseLost,
    NotificationListener,
    describe_error,
)
from workflow_orchestrator.storage.events import (
    EVENTS_CHANNEL,
    ClaimedEvent,
    DeadLetter,
    RoutingStale,
    claim_events,
    dead_letter_events,
    delete_claimed_events,
    oldest_event_age,
)

__all__ = [
    "NOTIFY_CHANNEL",
    "SOURCE_KIND",
    "ClaimLost",
    "ClaimedBatch",
    "DatabaseEventSource",
    "DatabaseEventSourceStatistics",
    "InvalidRow",
    "check_claim",
    "parse_claimed",
]

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = EVENTS_CHANNEL
"""The channel the ``events`` insert trigger notifies."""

SOURCE_KIND = "database"
"""The ``source`` passed to the router and the ``source_kind`` of dead letters."""

_RETRY_INITIAL = 0.1  # the first pause after a failure; doubling up to:
_RETRY_MAX = 5.0  # the longest pause between attempts

# What a lost or refused connection, or a failed statement (a deadlock, a serialization
# failure), raises through ``Database.run`` and the router: logged and retried with backoff.
# Anything else (a bug) ends the source instead of being retried forever.
_DATABASE_ERRORS = DATABASE_ERRORS


class ClaimLost(OrchestratorError, RuntimeError):
    """Some claimed rows were no longer claimed by this source when the routing transaction
    tried to delete them (the claim expired and another replica took them); raised inside the
    routing transaction, so the batch's routing rolls back and the other replica routes them."""

    def __init__(self, message: str, *, owner_id: str, missing: int) -> None:
        super().__init__(message)
        self.owner_id = owner_id
        self.missing = missing


# Not tied to an event: the batch is tried again after a pause (a refusal of an event's data,
# ``REFUSED_BY_DATA``, is caught before these).
_ROUTING_ERRORS: tuple[type[BaseException], ...] = (
    *_DATABASE_ERRORS,
    ClaimLost,
    RoutingStale,
    LeaseLost,
)


@attrs.frozen(kw_only=True)
class DatabaseEventSourceStatistics:
    """A snapshot of the source (no I/O).

    ``claimed_total`` counts claimed rows (a row claimed again after a failed routing counts
    again), ``routed_total`` events whose routing committed, ``dead_lettered_total`` rows moved
    to ``event_dead_letters``, ``failures_total`` failed attempts (claim, dead-lettering or
    routing). ``last_batch_size`` is the number of rows of the last claim.
    """

    listening: bool
    claimed_total: int
    routed_total: int
    dead_lettered_total: int
    failures_total: int
    last_batch_size: int
    last_error: str | None


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value!r}")


def _non_empty(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


@attrs.frozen(kw_only=True)
class InvalidRow:
    """A claimed row that is not a valid CloudEvent: dead-lettered with ``reason``."""

    seq: int
    reason: str
    payload: str
    received_at: datetime


@attrs.frozen(kw_only=True)
class ClaimedBatch:
    """A claim parsed: the valid events with their sequences and rows' text (same order), the
    invalid rows."""

    events: tuple[CloudEvent, ...]
    seqs: tuple[int, ...]
    invalid: tuple[InvalidRow, ...]
    payloads: tuple[str, ...]


def parse_claimed(rows: Sequence[ClaimedEvent], *, max_size: int) -> ClaimedBatch:
    """Split claimed rows into the events to route and the rows to dead-letter (not JSON, not
    a CloudEvent, over ``max_size`` bytes), keeping ``event_seq`` order in both."""
    events: list[CloudEvent] = []
    seqs: list[int] = []
    payloads: list[str] = []
    invalid: list[InvalidRow] = []
    for row in rows:
        try:
            events.append(parse_json_event(row.event, max_size=max_size))
        except InvalidEvent as exc:
            invalid.append(
                InvalidRow(
                    seq=row.seq, reason=str(exc), payload=row.event, received_at=row.received_at
                )
            )
        else:
            seqs.append(row.seq)
            payloads.append(row.event)
    return ClaimedBatch(
        events=tuple(events), seqs=tuple(seqs), invalid=tuple(invalid), payloads=tuple(payloads)
    )


def check_claim(deleted: int, claimed: Sequence[int], owner_id: str) -> None:
    """Raise `ClaimLost` when the routing transaction deleted fewer of the ``claimed`` rows
    than it claimed (another source took some after the claim expired)."""
    if deleted != len(claimed):
        raise ClaimLost(
            f"{len(claimed) - deleted} of {len(claimed)} claimed events are no longer "
            f"claimed by {owner_id!r} (the claim expired and another source took them)",
            owner_id=owner_id,
            missing=len(claimed) - deleted,
        )


@attrs.define(eq=False)
class DatabaseEventSource:
    """Routes the CloudEvents of the ``events`` table (see the module docstring).

    Run ``run`` in a nursery with ``nursery.start``: it reports started once it listens for
    notifications and runs until cancelled.
    """

    database: Database
    router: Router
    owner_id: str = attrs.field(validator=_non_empty)
    batch_size: int = attrs.field(default=500, validator=_positive)
    poll_interval: float = attrs.field(default=1.0, validator=_positive)
    claim_ttl: float = attrs.field(default=30.0, validator=_positive)
    max_event_size: int = attrs.field(default=MAX_EVENT_SIZE, validator=_positive)
    _wakeup: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)
    _listener: NotificationListener = attrs.field(init=False, repr=False)
    _claimed: int = attrs.field(default=0, init=False)
    _routed: int = attrs.field(default=0, init=False)
    _dead_lettered: int = attrs.field(default=0, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _last_batch_size: int = attrs.field(default=0, init=False)
    _last_error: str | None = attrs.field(default=None, init=False)
    _attempt: int = attrs.field(default=0, init=False)  # failed attempts of the current outage

    def __attrs_post_init__(self) -> None:
        self._listener = NotificationListener(
            database=self.database,
            channel=NOTIFY_CHANNEL,
            on_payload=lambda _: self.wake(),
            on_listening=self.wake,
            name=f"database event source {self.owner_id}",
        )

    def statistics(self) -> DatabaseEventSourceStatistics:
        """The counters and the listener's state (no I/O)."""
        return DatabaseEventSourceStatistics(
            listening=self._listener.listening,
            claimed_total=self._claimed,
            routed_total=self._routed,
            dead_lettered_total=self._dead_lettered,
            failures_total=self._failures,
            last_batch_size=self._last_batch_size,
            last_error=self._last_error,
        )

    async def oldest_pending_age(self) -> float | None:
        """Seconds since the first pending row of ``events`` (in ``event_seq`` order, the oldest
        unless a producer set ``received_at`` itself) was received; None when the table is empty.
        One indexed query."""
        return await oldest_event_age(self.database)

    def wake(self) -> None:
        """Look for events now instead of at the next notification or poll (Trio thread)."""
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, claim, parse and route until cancelled (see the module docstring)."""
        async with trio.open_nursery() as nursery:
            # Anything inserted while nobody listened is picked up as soon as it listens
            # (again), not at the next poll.
            await nursery.start(self._listener.run)
            task_status.started()
            while True:
                # A fresh event before claiming: a notification that arrives while this batch
                # is in flight makes the wait below return at once.
                self._wakeup = trio.Event()
                full = await self._process_one_batch()
                if full is None:
                    await trio.sleep(self._next_delay())
                elif not full:
                    with trio.move_on_after(self.poll_interval):
                        await self._wakeup.wait()

    # -- batches --------------------------------------------------------------------------

    async def _process_one_batch(self) -> bool | None:
        """Claim, dead-letter and route one batch: True when it was full (more may be waiting),
        False when not, None when an attempt failed (back off and try again)."""
        try:
            rows = await claim_events(
                self.database,
                owner_id=self.owner_id,
                claim_ttl=self.claim_ttl,
                limit=self.batch_size,
            )
        except _DATABASE_ERRORS as exc:
            self._failed(f"claiming events failed: {describe_error(exc)}", exc)
            return None
        self._last_batch_size = len(rows)
        self._claimed += len(rows)
        if not rows:
            self._recovered()
            return False
        batch = parse_claimed(rows, max_size=self.max_event_size)
        if batch.invalid and not await self._dead_letter(batch.invalid):
            return None
        if batch.events and not await self._route(batch):
            return None
        self._recovered()
        return len(rows) >= self.batch_size

    async def _dead_letter(self, invalid: Sequence[InvalidRow]) -> bool:
        letters = [
            DeadLetter(seq=bad.seq, reason=bad.reason, payload=bad.payload) for bad in invalid
        ]
        try:
            moved = await dead_letter_events(
                self.database, letters, owner_id=self.owner_id, source_kind=SOURCE_KIND
            )
        except _DATABASE_ERRORS as exc:
            self._failed(
                f"dead-lettering {len(invalid)} invalid events failed: {describe_error(exc)}", exc
            )
            return False
        self._dead_lettered += len(moved)
        for bad in invalid:
            if bad.seq in moved:
                logger.warning(
                    "database event source: event_seq %d (received %s) is not a valid "
                    "CloudEvent, moved to event_dead_letters: %s",
                    bad.seq,
                    bad.received_at.isoformat(),
                    bad.reason,
                )
            else:
                logger.debug(
                    "database event source: event_seq %d was claimed by another source", bad.seq
                )
        return True

    async def _route_rows(self, events: Sequence[CloudEvent], seqs: Sequence[int]) -> None:
        """Route ``events`` deleting their claimed rows ``seqs`` in the routing transaction;
        raises what the router raises (nothing was committed then)."""
        owner_id = self.owner_id
        claimed = list(seqs)

        async def delete_claimed(connection: Any) -> None:
            deleted = await delete_claimed_events(connection, claimed, owner_id)
            check_claim(deleted, claimed, owner_id)

        await self.router.route(events, source=SOURCE_KIND, consume=delete_claimed)

    async def _route(self, batch: ClaimedBatch) -> bool:
        """Route the batch's events (one at a time when PostgreSQL refuses its data); False
        when an attempt failed and the source backs off (the rows keep this claim)."""
        events, seqs = batch.events, batch.seqs
        try:
            await self._route_rows(events, seqs)
        except REFUSED_BY_DATA as exc:
            if len(events) > 1:
                logger.warning(
                    "database event source %s: routing %d events (event_seq %d..%d) one at a "
                    "time to find the one PostgreSQL refuses (%s)",
                    self.owner_id,
                    len(events),
                    seqs[0],
                    seqs[-1],
                    describe_error(exc),
                )
                return await self._route_one_at_a_time(batch)
            return await self._dead_letter_refused(batch, 0, exc)
        except _ROUTING_ERRORS as exc:
            self._failed(
                f"routing {len(events)} events (event_seq {seqs[0]}..{seqs[-1]}) failed: "
                f"{describe_error(exc)}",
                exc,
            )
            return False
        self._routed += len(events)
        return True

    async def _route_one_at_a_time(self, batch: ClaimedBatch) -> bool:
        """Route each event of ``batch`` in its own transaction; dead-letter those refused
        alone. False at the first failure not tied to an event (the rows not routed yet keep
        this claim and come back with the next attempt)."""
        for index, (event, seq) in enumerate(zip(batch.events, batch.seqs, strict=True)):
            try:
                await self._route_rows([event], [seq])
            except REFUSED_BY_DATA as exc:
                if not await self._dead_letter_refused(batch, index, exc):
                    return False
            except _ROUTING_ERRORS as exc:
                self._failed(f"routing event_seq {seq} failed: {describe_error(exc)}", exc)
                return False
            else:
                self._routed += 1
        return True

    async def _dead_letter_refused(
        self, batch: ClaimedBatch, index: int, refusal: BaseException
    ) -> bool:
        """Move the row of ``batch.events[index]``, refused alone, to ``event_dead_letters``
        with the refusal as its reason; False when that failed (back off and try again)."""
        seq, event = batch.seqs[index], batch.events[index]
        reason = refusal_reason(refusal)
        letter = DeadLetter(seq=seq, reason=reason, payload=batch.payloads[index])
        try:
            moved = await dead_letter_events(
                self.database, [letter], owner_id=self.owner_id, source_kind=SOURCE_KIND
            )
        except _DATABASE_ERRORS as exc:
            self._failed(
                f"dead-lettering event_seq {seq}, refused by PostgreSQL, failed: "
                f"{describe_error(exc)}",
                exc,
            )
            return False
        if seq in moved:
            self._dead_lettered += 1
            logger.warning(
                "database event source: event_seq %d, %s, refused by PostgreSQL, moved to "
                "event_dead_letters: %s",
                seq,
                describe_event(event),
                reason,
            )
        else:
            logger.debug("database event source: event_seq %d was claimed by another source", seq)
        return True

    # -- failures -------------------------------------------------------------------------

    def _failed(self, what: str, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = what
        self._attempt += 1
        if self._attempt == 1:
            logger.warning(
                "database event source %s: %s; retrying (backoff up to %gs)",
                self.owner_id,
                what,
                _RETRY_MAX,
            )
        else:
            logger.debug(
                "database event source %s: attempt %d: %s",
                self.owner_id,
                self._attempt,
                what,
                exc_info=exc,
            )

    def _recovered(self) -> None:
        if not self._attempt:
            return
        logger.info(
            "database event source %s: routing again after %d failed attempts",
            self.owner_id,
            self._attempt,
        )
        self._attempt = 0

    def _next_delay(self) -> float:
        return backoff_step(self._attempt, initial=_RETRY_INITIAL, maximum=_RETRY_MAX)
