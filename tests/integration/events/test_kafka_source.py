"""The Kafka event source (``consume_kafka``) driven directly, without the service: a real
broker (tansu), the adapter's consumer and producer, and a router that records what it routed
and fails or refuses as the database would.

Records are produced before the consumer joins, in one request, so they arrive in one batch.
Offsets are checked from the test's side (``committed_offsets``), as another client sees them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from aiokafka import AIOKafkaProducer

from tests.support.background import wait_until
from tests.support.events import cloud_event
from tests.support.kafka import KafkaBroker, open_kafka_broker
from tests.support.kafka_clients import (
    ConsumedRecord,
    Record,
    committed_offsets,
    consume_all,
    create_topics,
    on_asyncio,
    produce,
)
from workflow_orchestrator.adapters.kafka import (
    KafkaConsumer,
    KafkaProducer,
    client_options,
    open_kafka_consumer,
    open_kafka_producer,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import KafkaSettings
from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events import REJECTION_REASON_HEADER, InvalidEvent, parse_kafka_record
from workflow_orchestrator.events._kafka_source import consume_kafka
from workflow_orchestrator.events._routing import Consume, EventOutcome, RouteOutcome
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.storage import DatabaseUnavailable
from workflow_orchestrator.storage.events import RoutingRefused

pytestmark = pytest.mark.integration

SESSION = 3.0
STRUCTURED = b"application/cloudevents+json"
SOURCE_LOG = "workflow_orchestrator.events._kafka_source"
ROUTING_LOG = "workflow_orchestrator.events._source_routing"


@attrs.define(eq=False)
class RecordingRouter:
    """A ``Router`` (events/_routing.py) that records the ids of each batch it committed.

    The first ``failures`` calls fail as a lost database connection does; a batch holding an
    id of ``refused`` is refused whole with ``RoutingRefused``, as PostgreSQL refuses one
    event's data; once the failures are spent, a call waits for ``gate`` when there is one.
    """

    failures: int = 0
    refused: frozenset[str] = frozenset()
    gate: trio.Event | None = None
    calls: int = 0
    routed: list[tuple[str, ...]] = attrs.field(factory=list)
    sources: set[str] = attrs.field(factory=set)

    async def route(
        self, events: Sequence[CloudEvent], *, source: str, consume: Consume | None = None
    ) -> RouteOutcome:
        self.calls += 1
        self.sources.add(source)
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("connection to the database lost", database="test")
        ids = tuple(str(event.attributes["id"]) for event in events)
        if self.refused.intersection(ids):
            what = "the event" if len(ids) == 1 else f"a batch of {len(ids)} events"
            raise RoutingRefused(f"PostgreSQL refused {what} (test); shorten or change the event")
        if self.gate is not None:
            await self.gate.wait()
        self.routed.append(ids)
        return RouteOutcome(events=tuple(EventOutcome(duplicate=False) for _ in events))

    @property
    def routed_ids(self) -> list[str]:
        return [event_id for batch in self.routed for event_id in batch]


@attrs.frozen
class Names:
    topic: str
    group: str

    @property
    def dead_letter(self) -> str:
        return f"{self.group}.dead-letter"


@pytest.fixture
def names() -> Names:
    suffix = uuid.uuid4().hex[:8]
    return Names(topic=f"business-{suffix}", group=f"orchestrator-{suffix}")


def structured(topic: str, event: dict[str, Any], **headers: bytes) -> Record:
    """``event`` as a structured-mode record keyed by its id, with extra ``headers``."""
    return Record(
        topic=topic,
        partition=0,
        key=str(event["id"]).encode(),
        value=json.dumps(event).encode(),
        headers=(("content-type", STRUCTURED), *headers.items()),
    )


def payment(event_id: str) -> dict[str, Any]:
    return cloud_event("payment.received", {"amount": 7}, event_id=event_id)


def options(broker: KafkaBroker) -> dict[str, Any]:
    return client_options(KafkaSettings(bootstrap_servers=broker.bootstrap))


@asynccontextmanager
async def kafka_source(
    broker: KafkaBroker,
    names: Names,
    router: RecordingRouter,
    *,
    dead_letters: KafkaBroker | None = None,
    metrics: ServiceMetrics | None = None,
) -> AsyncIterator[tuple[KafkaConsumer, KafkaProducer]]:
    """``consume_kafka`` running for the block on ``names.topic`` of ``broker``, its
    dead letters produced to ``dead_letters`` (``broker`` by default)."""
    async with (
        open_asyncio_bridge(),
        open_kafka_producer(
            options(dead_letters or broker),
            brokers=(dead_letters or broker).bootstrap,
            idempotent=False,
            operation_timeout=1.0,
        ) as producer,
        open_kafka_consumer(
            options(broker),
            brokers=broker.bootstrap,
            group_id=names.group,
            topics=[names.topic],
            session_timeout=SESSION,
        ) as consumer,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(
            partial(
                consume_kafka,
                consumer,
                producer,
                router,
                dead_letter_topic=names.dead_letter,
                metrics=metrics,
            )
        )
        yield consumer, producer
        nursery.cancel_scope.cancel()


async def wait_committed(broker: KafkaBroker, names: Names, offsets: dict[int, int]) -> None:
    """Poll the group's committed offsets until they are ``offsets`` (the caller bounds it)."""
    # Committed offsets signal nothing the test could wait on.
    while await committed_offsets(broker.bootstrap, names.group, names.topic) != offsets:  # noqa: ASYNC110
        await trio.sleep(0.1)


def parse_error(record: Record) -> str:
    """The reason the CloudEvents binding gives for ``record``."""
    with pytest.raises(InvalidEvent) as refused:
        parse_kafka_record(record.headers, record.key, record.value)
    return str(refused.value)


def header(record: ConsumedRecord, name: str) -> str | None:
    value = record.header(name)
    return None if value is None else value.decode()


def dead_lettered(metrics: ServiceMetrics, event_type: str) -> float | None:
    return metrics.registry.get_sample_value(
        "workflow_orchestrator_events_dead_lettered_total", {"source": "kafka", "type": event_type}
    )


async def test_a_refused_event_and_a_record_that_is_no_event_are_dead_lettered(
    kafka_broker: KafkaBroker, names: Names
) -> None:
    """In one batch: a record that is not a CloudEvent, an event the database refuses, and
    valid events. The valid ones are routed (one at a time once the batch was refused), the
    other two go to the dead-letter topic with their reasons, their key, value and headers
    and where they came from; then the batch is committed."""
    await create_topics(kafka_broker.bootstrap, [names.topic, names.dead_letter])
    broken = Record(
        topic=names.topic,
        partition=0,
        key=b"broken",
        value=b"{not json",
        headers=(("content-type", STRUCTURED), ("trace", b"t-1")),
    )
    records = [
        structured(names.topic, payment("p-1")),
        broken,
        structured(names.topic, payment("p-2")),
        structured(names.topic, payment("refused-1"), trace=b"t-2"),
        structured(names.topic, payment("p-3")),
    ]
    await produce(kafka_broker.bootstrap, records)
    router = RecordingRouter(refused=frozenset({"refused-1"}))
    metrics = ServiceMetrics()
    with trio.fail_after(60):
        async with kafka_source(kafka_broker, names, router, metrics=metrics):
            await wait_committed(kafka_broker, names, {0: 5})
        copies = await consume_all(kafka_broker.bootstrap, names.dead_letter, expect=2, timeout=10)

    assert router.routed_ids == ["p-1", "p-2", "p-3"]
    assert router.sources == {"kafka"}
    assert [(c.key, c.value) for c in copies] == [
        (b"broken", b"{not json"),
        (b"refused-1", records[3].value),
    ]
    not_an_event, refused = copies
    assert not_an_event.headers[:2] == (("content-type", STRUCTURED), ("trace", b"t-1"))
    assert header(not_an_event, REJECTION_REASON_HEADER) == parse_error(broken)
    assert header(refused, REJECTION_REASON_HEADER) == (
        "PostgreSQL refused the event (test); shorten or change the event"
    )
    assert header(refused, "trace") == "t-2"
    assert [
        (
            header(c, "x-original-topic"),
            header(c, "x-original-partition"),
            header(c, "x-original-offset"),
        )
        for c in copies
    ] == [(names.topic, "0", "1"), (names.topic, "0", "3")]
    assert dead_lettered(metrics, "") == 1
    assert dead_lettered(metrics, "payment.received") == 1


async def test_routing_is_retried_and_the_offsets_wait_for_it(
    kafka_broker: KafkaBroker, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """While the database fails, routing is retried (one WARNING) and nothing is committed;
    once the router committed the batch, its offsets are."""
    caplog.set_level(logging.INFO, logger=ROUTING_LOG)
    await create_topics(kafka_broker.bootstrap, [names.topic, names.dead_letter])
    await produce(
        kafka_broker.bootstrap, [structured(names.topic, payment(f"p-{n}")) for n in range(3)]
    )
    gate = trio.Event()
    router = RecordingRouter(failures=2, gate=gate)
    with trio.fail_after(60):
        async with kafka_source(kafka_broker, names, router):
            await wait_until(lambda: router.calls == 3, 0.02)  # two failures, then held
            assert await committed_offsets(kafka_broker.bootstrap, names.group, names.topic) == {}
            assert router.routed == []
            gate.set()
            await wait_committed(kafka_broker, names, {0: 3})
    assert router.routed == [("p-0", "p-1", "p-2")]
    retries = [r.getMessage() for r in caplog.records if r.name == ROUTING_LOG]
    assert retries == [
        "routing 3 events from Kafka failed (DatabaseUnavailable: connection to the database "
        "lost); retrying, the messages stay unacknowledged",
        "routing from Kafka works again after 2 failures",
    ]


async def test_dead_lettering_is_retried_until_written_and_only_then_committed(
    kafka_broker: KafkaBroker, names: Names, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The dead-letter topic lives on a second broker, stopped: the copy is produced again
    and again (one WARNING) and the batch stays uncommitted; once that broker is back, the
    copy is written and the batch committed."""
    caplog.set_level(logging.WARNING, logger=SOURCE_LOG)
    await create_topics(kafka_broker.bootstrap, [names.topic])
    broken = Record(topic=names.topic, partition=0, key=b"broken", value=b"plain text")
    await produce(kafka_broker.bootstrap, [broken, structured(names.topic, payment("p-1"))])
    router = RecordingRouter()
    with trio.fail_after(60):
        # Durable storage: tansu restarted with memory storage acknowledges records for the
        # topic it forgot, and they are not found afterwards.
        async with open_kafka_broker(
            storage="durable", name="dead-letters", log_folder=tmp_path
        ) as dead_letters:
            await create_topics(dead_letters.bootstrap, [names.dead_letter])
            async with kafka_source(kafka_broker, names, router, dead_letters=dead_letters):
                await dead_letters.stop(kill=True)

                def failures() -> list[str]:
                    return [
                        r.getMessage()
                        for r in caplog.records
                        if r.name == SOURCE_LOG and r.getMessage().startswith("dead-lettering 1 ")
                    ]

                await wait_until(lambda: bool(failures()), 0.05)
                [warning] = failures()
                assert warning.startswith(
                    f"dead-lettering 1 records to '{names.dead_letter}' failed (producing 1 "
                    f"records to ['{names.dead_letter}'] did not finish within 1s;"
                )
                assert "the batch is not committed until they are" in warning
                assert router.routed_ids == ["p-1"]
                committed = await committed_offsets(
                    kafka_broker.bootstrap, names.group, names.topic
                )
                assert committed == {}

                await dead_letters.start()
                await wait_committed(kafka_broker, names, {0: 2})
                copies = await consume_all(
                    dead_letters.bootstrap, names.dead_letter, expect=1, timeout=10
                )
    # At least once: a copy whose acknowledgement was lost may be written twice.
    assert copies
    assert {(c.key, c.value, header(c, "x-original-offset")) for c in copies} == {
        (b"broken", b"plain text", "0")
    }
    assert header(copies[0], REJECTION_REASON_HEADER) == parse_error(broken)
    assert router.routed_ids == ["p-1"]


async def produce_large(broker: KafkaBroker, record: Record) -> None:
    """Produce ``record`` with a producer allowing requests of 8 MiB (brokers may accept
    records larger than the service's producer sends)."""

    async def work() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, max_request_size=8 << 20, enable_idempotence=False
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                record.topic,
                record.value,
                key=record.key,
                partition=record.partition,
                headers=list(record.headers),
            )
        finally:
            await producer.stop()

    await on_asyncio(work)


async def test_a_record_too_large_to_copy_is_dead_lettered_without_its_content(
    kafka_broker: KafkaBroker, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1.5 MB record that is no CloudEvent (the broker took it; the service's producer sends
    at most 1 MiB) is dead-lettered without its value and headers, with the reason, where it
    came from and its size; the batch is committed and the next record routed: nothing
    stalls behind it."""
    caplog.set_level(logging.WARNING, logger=SOURCE_LOG)
    await create_topics(kafka_broker.bootstrap, [names.topic, names.dead_letter])
    huge = Record(
        topic=names.topic,
        partition=0,
        key=b"huge",
        value=b"x" * 1_500_000,
        headers=(("trace", b"t-9"),),
    )
    await produce_large(kafka_broker, huge)
    await produce(kafka_broker.bootstrap, [structured(names.topic, payment("p-1"))])
    router = RecordingRouter()
    with trio.fail_after(60):
        async with kafka_source(kafka_broker, names, router):
            await wait_committed(kafka_broker, names, {0: 2})
        [copy] = await consume_all(kafka_broker.bootstrap, names.dead_letter, expect=1, timeout=10)
    assert router.routed_ids == ["p-1"]
    assert (copy.key, copy.value) == (b"huge", b"")
    assert header(copy, REJECTION_REASON_HEADER) == parse_error(huge)
    assert header(copy, "trace") is None
    assert (header(copy, "x-original-topic"), header(copy, "x-original-offset")) == (
        names.topic,
        "0",
    )
    assert header(copy, "x-original-size") == str(1_500_000 + len(b"huge") + len(b"trace") + 3)
    assert "MessageSizeTooLargeError" in (header(copy, "x-value-omitted") or "")
    assert any(
        "without its value" in r.getMessage() and "MessageSizeTooLargeError" in r.getMessage()
        for r in caplog.records
        if r.name == SOURCE_LOG
    )
