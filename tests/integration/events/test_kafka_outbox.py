"""The outbox relay over Kafka: rows become structured records on the topic of their kind,
keyed by instance id, in order; a row the broker refuses for good (over the producer's size
limit) is moved to ``event_dead_letters`` instead of holding back every row behind it.
Compressed records (lz4, snappy, zstd), as Java, Go and librdkafka producers send them, are
consumed."""

from __future__ import annotations

import json
import logging
from functools import partial

import pytest
import trio
from aiokafka import AIOKafkaProducer

from tests.integration.events.test_kafka_adapter import consumer, producer, receive, unique
from tests.integration.events.test_outbox_relay import (
    INSTANCE,
    RELAY_LOGGER,
    insert_rows,
    wait_until_empty,
)
from tests.support.background import running
from tests.support.database import open_test_database
from tests.support.kafka import KafkaBroker
from tests.support.kafka_clients import consume_all, create_topics, on_asyncio
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.events._outbox_relay import OutboxRelay, kafka_outbox_record

pytestmark = pytest.mark.integration


async def test_a_row_too_large_for_kafka_is_dead_lettered_and_the_rest_flows(
    database_url: str, kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Three rows, the second 1.5 MB: the first and third arrive on their topics keyed by the
    instance id, the second is in event_dead_letters with the reason and an ERROR names it."""
    business, system = unique("business"), unique("system")
    await create_topics(kafka_broker.bootstrap, [business, system])
    topics = {"business": business, "system": system}
    with trio.fail_after(60):
        async with (
            open_test_database(database_url) as database,  # with its asyncio bridge
            producer(kafka_broker, idempotent=False) as kafka,
        ):
            await insert_rows(database, 1, prefix="before")
            huge = await insert_rows(database, 1, exchange="system", prefix="huge")
            await database.execute(
                "UPDATE outbox SET body = $1 WHERE event_id = $2",
                json.dumps({"id": huge[0], "data": "x" * 1_500_000}),
                huge[0],
            )
            await insert_rows(database, 1, prefix="after")
            relay = OutboxRelay(
                database=database,
                publisher=kafka,
                partitions=lambda: frozenset({0}),
                encode=partial(kafka_outbox_record, topics=topics),
                retry_initial=0.05,
            )
            async with running(relay):
                await wait_until_empty(database)
            dead = await database.fetch(
                "SELECT source_kind, reason, payload FROM event_dead_letters"
            )
            # The rows published with the refused one go out again: duplicates, never a gap.
            records = await consume_all(kafka_broker.bootstrap, business, expect=4, timeout=5)
    assert [(r["source_kind"], huge[0] in r["payload"]) for r in dead] == [("outbox", True)]
    assert "MessageSizeTooLarge" in dead[0]["reason"], dead[0]["reason"]
    ids = [json.loads(r.value or b"")["id"] for r in records]
    assert list(dict.fromkeys(ids)) == ["before-0", "after-0"], ids
    assert {r.key for r in records} == {str(INSTANCE).encode()}
    errors = [r for r in caplog.records if r.name == RELAY_LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and huge[0] in errors[0].getMessage(), errors


@pytest.mark.parametrize("codec", ["lz4", "snappy", "zstd", "gzip"])
async def test_compressed_records_are_consumed(kafka_broker: KafkaBroker, codec: str) -> None:
    """Batches compressed by the producer are read like any other."""
    topic, group = unique(codec), unique("group")
    await create_topics(kafka_broker.bootstrap, [topic])

    async def produce_compressed() -> None:
        client = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, compression_type=codec)
        try:
            await client.start()
            for n in range(20):
                await client.send(topic, f"value-{n}".encode(), key=b"k")
            await client.flush()
        finally:
            await client.stop()

    with trio.fail_after(60):
        async with open_asyncio_bridge():
            await on_asyncio(produce_compressed)
            async with consumer(kafka_broker, group, topic) as member:
                records = await receive(member, 20)
    assert [r.value for r in records] == [f"value-{n}".encode() for n in range(20)]
