"""The database event source against the real PostgreSQL: claiming, routing in order, deletion
in the routing transaction, dead letters, notifications, polling, a lost LISTEN connection,
retries after a failed routing, lost claims, and two replicas sharing one table.

The router is a recording stand-in: it runs the source's ``consume`` in a transaction of its own
and records what it routed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import attrs
import pytest
import trio

from tests.support.background import running, wait_until
from tests.support.database import open_test_database
from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._database_source import DatabaseEventSource
from workflow_orchestrator.events._routing import Consume, EventOutcome, RouteOutcome
from workflow_orchestrator.storage import Database

pytestmark = pytest.mark.integration


@attrs.define(eq=False)
class RecordingRouter:
    """Implements ``Router``: runs ``consume`` in its own transaction and records the events.

    While ``fail`` is set, each call runs ``consume`` and then raises a database error inside
    the transaction (so it rolls back). ``before`` runs (Trio side) before the transaction.
    """

    database: Database
    routed: list[CloudEvent] = attrs.field(factory=list)
    sources: list[str] = attrs.field(factory=list)
    batches: list[int] = attrs.field(factory=list)
    fail: bool = False
    failed_calls: int = 0
    before: Callable[[], Any] | None = None

    async def route(
        self, events: Sequence[CloudEvent], *, source: str, consume: Consume | None = None
    ) -> RouteOutcome:
        if self.before is not None:
            await self.before()
        fail = self.fail

        async def unit(connection: Any) -> None:
            if consume is not None:
                await consume(connection)
            if fail:
                raise asyncpg.DeadlockDetectedError("simulated deadlock")

        try:
            await self.database.run_in_transaction(unit)
        except asyncpg.DeadlockDetectedError:
            self.failed_calls += 1
            raise
        self.routed.extend(events)
        self.sources.append(source)
        self.batches.append(len(events))
        return RouteOutcome(events=tuple(EventOutcome(duplicate=False) for _ in events))

    @property
    def ids(self) -> list[str]:
        return [str(event.attributes["id"]) for event in self.routed]


def event(number: int, **overrides: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(number),
        "source": "/shop",
        "type": "order.placed",
        "data": {"order": number},
    }
    attributes.update(overrides)
    return attributes


async def publish(database: Database, numbers: Sequence[int]) -> list[int]:
    """Publish ``event(n)`` for each number with ``workflow_publish_event`` in one transaction
    (so they become visible together): one crossing."""

    async def unit(connection: Any) -> list[int]:
        return [
            await connection.fetchval("SELECT workflow_publish_event($1::jsonb)", event(n))
            for n in numbers
        ]

    seqs: list[int] = await database.run_in_transaction(unit)
    return seqs


async def pending(database: Database) -> int:
    count: int = await database.fetchval("SELECT count(*) FROM events")
    return count


async def listener_pids(database: Database) -> list[int]:
    rows = await database.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
    )
    return [int(row["pid"]) for row in rows]


async def replaced_listener(database: Database, old: int) -> int:
    """The pid of the LISTEN connection that replaced ``old`` (waits for it)."""
    while True:
        pids = await listener_pids(database)
        if pids and old not in pids:
            [new] = pids
            return new
        await trio.sleep(0.05)


async def test_published_events_are_routed_in_order_and_deleted(database_url: str) -> None:
    """Published events are routed in seq order across batches and deleted with the routing."""
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a", batch_size=10)
            seqs = await publish(database, range(25))
            assert seqs == sorted(seqs)
            async with running(source):
                await wait_until(lambda: len(router.routed) == 25)
                assert await pending(database) == 0
                assert await source.oldest_pending_age() is None
                statistics = source.statistics()
    assert router.ids == [str(n) for n in range(25)]
    assert router.batches == [10, 10, 5]
    assert set(router.sources) == {"database"}
    assert router.routed[3].attributes == event(3)
    assert statistics.listening
    assert (statistics.claimed_total, statistics.routed_total) == (25, 25)
    assert (statistics.dead_lettered_total, statistics.failures_total) == (0, 0)
    assert statistics.last_batch_size == 5  # not full: it waits for a notification now


async def test_notification_wakes_the_source_long_before_the_poll_interval(
    database_url: str,
) -> None:
    """With a 30 s poll interval, an event published to an idle source is routed at once."""
    with trio.fail_after(10):
        async with open_test_database(database_url) as database:
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=30.0)
            async with running(source):
                await publish(database, [1])
                await wait_until(lambda: len(router.routed) == 1)
                await trio.sleep(0.2)  # idle now: only a notification can wake it
                with trio.fail_after(5):
                    await publish(database, [2])
                    await wait_until(lambda: len(router.routed) == 2)
    assert router.ids == ["1", "2"]


async def test_polling_delivers_when_no_notification_arrives(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With notifications dropped, polling still routes a published event."""
    with trio.fail_after(10):
        async with open_test_database(database_url) as database:
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=0.3)
            monkeypatch.setattr(source._listener, "on_payload", lambda _payload: None)
            async with running(source):
                await trio.sleep(0.5)  # past the first (empty) claim
                await publish(database, [1, 2])
                await wait_until(lambda: len(router.routed) == 2)
                assert await pending(database) == 0
    assert router.ids == ["1", "2"]


async def test_terminated_listener_connection_is_reestablished(database_url: str) -> None:
    """Events published while the LISTEN connection is terminated arrive, and notifications
    work again on the new connection."""
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=0.5)
            async with running(source):
                [old] = await listener_pids(database)
                await database.fetchval("SELECT pg_terminate_backend($1)", old)
                await publish(database, [1])
                await wait_until(lambda: len(router.routed) == 1)
                await wait_until(lambda: source.statistics().listening)
                new = await replaced_listener(database, old)
                source.poll_interval = 30.0  # from the next wait on, only notifications help
                await trio.sleep(0.6)
                with trio.fail_after(5):
                    await publish(database, [2])
                    await wait_until(lambda: len(router.routed) == 2)
    assert new != old
    assert router.ids == ["1", "2"]


async def test_invalid_rows_are_dead_lettered_with_the_reason(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows that are not valid CloudEvents move to event_dead_letters, logged; valid ones route."""
    caplog.set_level(logging.WARNING, logger="workflow_orchestrator.events._database_source")
    bad = [
        {"specversion": "1.0", "source": "/shop", "type": "order.placed"},  # no id
        event(2, specversion="0.3"),
        [1, 2],
        event(4, **{"Bad-Name": "x"}),
    ]
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:

            async def insert(connection: Any) -> list[int]:
                seqs = []
                for payload in [event(0), *bad, event(5)]:
                    seqs.append(
                        await connection.fetchval(
                            "INSERT INTO events (event) VALUES ($1::jsonb) RETURNING event_seq",
                            payload,
                        )
                    )
                return seqs

            seqs = await database.run(insert)
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a")
            async with running(source):
                await wait_until(lambda: source.statistics().dead_lettered_total == 4)
                await wait_until(lambda: len(router.routed) == 2)
                letters = await database.fetch(
                    "SELECT source_kind, reason, payload FROM event_dead_letters "
                    "ORDER BY dead_letter_id"
                )
                assert await pending(database) == 0
    assert router.ids == ["0", "5"]
    assert [row["source_kind"] for row in letters] == ["database"] * 4
    assert [json.loads(row["payload"]) for row in letters] == bad
    reasons = [row["reason"] for row in letters]
    assert "the event has no 'id' attribute" in reasons[0]
    assert "specversion is '0.3'" in reasons[1]
    assert "not a JSON object" in reasons[2]
    assert "'Bad-Name' has an invalid name" in reasons[3]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for seq, reason in zip(seqs[1:5], reasons, strict=True):
        assert any(f"event_seq {seq} " in m and reason in m for m in warnings), (seq, warnings)


async def test_publish_function_rejects_a_bad_event_with_a_clear_error(
    database_url: str,
) -> None:
    """workflow_publish_event raises a clear SQL error for a broken event and inserts nothing."""
    cases = [
        ({"specversion": "1.0", "source": "/s", "type": "t"}, 'attribute "id" is missing'),
        (event(1, type=""), 'attribute "type" is missing or not a non-empty string'),
        (event(1, specversion="0.3"), 'specversion "0.3" is not supported'),
        ([event(1)], "a CloudEvent must be a JSON object"),
    ]
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:
            for payload, message in cases:
                with pytest.raises(asyncpg.RaiseError) as caught:
                    await database.fetchval("SELECT workflow_publish_event($1::jsonb)", payload)
                assert message in str(caught.value)
                assert caught.value.hint
            assert await pending(database) == 0


async def test_failed_routing_keeps_the_rows_and_routes_them_later(database_url: str) -> None:
    """A router that raises leaves the rows in events; a later attempt routes them once."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            router = RecordingRouter(database, fail=True)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=30.0)
            async with running(source):
                await publish(database, [1, 2, 3])
                await wait_until(lambda: router.failed_calls >= 2)
                rows = await database.fetch("SELECT claimed_by FROM events")
                assert [row["claimed_by"] for row in rows] == ["replica-a"] * 3
                failed = source.statistics()
                router.fail = False
                await wait_until(lambda: len(router.routed) == 3)
                assert await pending(database) == 0
                recovered = source.statistics()
    assert router.ids == ["1", "2", "3"]
    assert failed.failures_total >= 2
    assert failed.last_error is not None and "simulated deadlock" in failed.last_error
    assert recovered.routed_total == 3


async def test_expired_claims_of_others_are_taken_and_live_ones_are_not(
    database_url: str,
) -> None:
    """A dead replica's expired claim is taken over; a live replica's claim is left alone."""
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:
            await publish(database, [1, 2])
            await database.execute(
                "UPDATE events SET claimed_by = 'dead', claimed_until = now() - interval '1 s' "
                "WHERE event ->> 'id' = '1'"
            )
            await database.execute(
                "UPDATE events SET claimed_by = 'live', claimed_until = now() + interval '1 h' "
                "WHERE event ->> 'id' = '2'"
            )
            router = RecordingRouter(database)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=0.1)
            async with running(source):
                await wait_until(lambda: len(router.routed) == 1)
                await trio.sleep(0.5)
                rows = await database.fetch("SELECT event ->> 'id' AS id, claimed_by FROM events")
    assert router.ids == ["1"]
    assert [(row["id"], row["claimed_by"]) for row in rows] == [("2", "live")]


async def test_a_lost_claim_rolls_the_routing_back(database_url: str) -> None:
    """If another source took the rows meanwhile, the delete in the routing transaction fails
    and nothing of that routing commits."""
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:

            async def steal() -> None:
                await database.execute(
                    "UPDATE events SET claimed_by = 'thief', claimed_until = now() + interval '1 h'"
                )

            router = RecordingRouter(database, before=steal)
            source = DatabaseEventSource(database, router, "replica-a", poll_interval=30.0)
            async with running(source):
                await publish(database, [1, 2])
                await wait_until(lambda: source.statistics().failures_total >= 1)
                rows = await database.fetch("SELECT claimed_by FROM events")
                statistics = source.statistics()
    assert router.routed == []
    assert [row["claimed_by"] for row in rows] == ["thief", "thief"]
    assert statistics.routed_total == 0
    assert statistics.last_error is not None
    assert "no longer claimed by 'replica-a'" in statistics.last_error


async def test_two_sources_never_route_the_same_row_twice(database_url: str) -> None:
    """Two sources on one table route 1,000 events between them, each exactly once."""
    with trio.fail_after(60):
        async with open_test_database(database_url, pool_size=10) as database:
            first = RecordingRouter(database)
            second = RecordingRouter(database)
            sources = [
                DatabaseEventSource(database, first, "replica-a", batch_size=25),
                DatabaseEventSource(database, second, "replica-b", batch_size=25),
            ]
            async with running(sources[0]), running(sources[1]):
                for chunk in range(10):
                    await publish(database, range(chunk * 100, chunk * 100 + 100))
                    await trio.sleep(0.01)
                await wait_until(lambda: len(first.routed) + len(second.routed) >= 1000)
                await trio.sleep(0.3)  # room for a (wrong) second routing to show up
                assert await pending(database) == 0
    a, b = first.ids, second.ids
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert set(a) | set(b) == {str(n) for n in range(1000)}
    assert not set(a) & set(b)
    assert len(a) + len(b) == 1000
    for ids in (a, b):  # each source routes in seq order (publishing order here)
        assert [int(i) for i in ids] == sorted(int(i) for i in ids)


async def test_oldest_pending_age_reports_the_age(database_url: str) -> None:
    """oldest_pending_age is None for an empty table, else the first row's age in seconds."""
    with trio.fail_after(20):
        async with open_test_database(database_url) as database:
            source = DatabaseEventSource(database, RecordingRouter(database), "replica-a")
            assert await source.oldest_pending_age() is None
            await database.execute(
                "INSERT INTO events (event, received_at) VALUES ($1::jsonb, now() - interval "
                "'42 seconds')",
                event(1),
            )
            await publish(database, [2])
            age = await source.oldest_pending_age()
    assert age is not None and 42.0 <= age < 50.0
