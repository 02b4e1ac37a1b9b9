"""The Kafka adapter (``workflow_orchestrator.adapters.kafka``) against a real broker (tansu):
commits after handling, rebalances, statistics, a fetch that fails for good, acknowledged
producing, topic creation and aiokafka's log noise while the broker is away.

Every test has its own broker (memory storage) and names its own topics and groups. Consumers
use a short session timeout (``SESSION``): a group join on tansu takes about half of it.
The end-to-end behaviour of the service is tested in ``tests/e2e/test_events_kafka.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio
from aiokafka.protocol.produce import ProduceRequest_v3
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tests.support.background import wait_until
from tests.support.kafka import HOST, KafkaBroker
from tests.support.kafka_clients import (
    Record,
    committed_offsets,
    consume_all,
    create_topics,
    end_offsets,
    produce,
)
from tests.support.kafka_wire import FrameReader, decode_response, encode_request
from workflow_orchestrator.adapters._broker_errors import BrokerUnavailable, PublishFailed
from workflow_orchestrator.adapters.kafka import (
    KafkaConsumer,
    KafkaConsumerStatistics,
    KafkaProducer,
    KafkaRecord,
    OutgoingRecord,
    PartitionLag,
    _logs,
    client_options,
    ensure_topics,
    open_kafka_consumer,
    open_kafka_producer,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import KafkaSettings

pytestmark = pytest.mark.integration

SESSION = 3.0  # seconds; aiokafka heartbeats every second with it
MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default max_request_size, which the adapter keeps
CONSUMER_LOG = "workflow_orchestrator.adapters.kafka._consumer"
PRODUCER_LOG = "workflow_orchestrator.adapters.kafka._producer"
LOG_RULES_LOG = "workflow_orchestrator.adapters.kafka._logs"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def options(broker: KafkaBroker) -> dict[str, Any]:
    """The client options the service would build for ``broker`` (plaintext)."""
    return client_options(KafkaSettings(bootstrap_servers=broker.bootstrap))


def consumer(
    broker: KafkaBroker, group: str, topic: str, **overrides: Any
) -> AbstractAsyncContextManager[KafkaConsumer]:
    return open_kafka_consumer(
        options(broker),
        brokers=broker.bootstrap,
        group_id=group,
        topics=[topic],
        session_timeout=SESSION,
        **overrides,
    )


def producer(broker: KafkaBroker, **overrides: Any) -> AbstractAsyncContextManager[KafkaProducer]:
    return open_kafka_producer(options(broker), brokers=broker.bootstrap, **overrides)


async def receive(member: KafkaConsumer, count: int) -> list[KafkaRecord]:
    """Batches of ``member`` until at least ``count`` records arrived (the caller bounds it)."""
    received: list[KafkaRecord] = []
    while len(received) < count:
        received.extend(await member.batches.receive())
    return received


def where(records: Iterable[KafkaRecord]) -> list[tuple[int, int]]:
    """(partition, offset) of ``records``, sorted."""
    return sorted((r.partition, r.offset) for r in records)


def assigned(member: KafkaConsumer) -> set[int]:
    return {p.partition for p in member.statistics().partitions}


async def drain(
    members: Sequence[KafkaConsumer], expected: set[tuple[int, int]]
) -> list[KafkaRecord]:
    """Read and commit the batches of every member until the records committed cover
    ``expected`` (partition, offset); every record read, in arrival order per member."""
    got: list[KafkaRecord] = []
    covered = trio.Event()

    async def read(member: KafkaConsumer) -> None:
        while True:
            batch = await member.batches.receive()
            await member.commit(batch)
            got.extend(batch)
            if {(r.partition, r.offset) for r in got} >= expected:
                covered.set()

    async with trio.open_nursery() as nursery:
        for member in members:
            nursery.start_soon(read, member)
        await covered.wait()
        nursery.cancel_scope.cancel()
    return got


# -- consuming and committing -------------------------------------------------------------------


async def test_offsets_are_committed_only_by_commit_exactly_after_the_records(
    kafka_broker: KafkaBroker,
) -> None:
    """Nothing is committed before ``commit``, which commits the offsets right after the
    records it is given (never below what was committed). A member of the same group that
    joins after the first left gets exactly the records not committed again."""
    bootstrap, topic, group = kafka_broker.bootstrap, unique("commits"), unique("group")
    await create_topics(bootstrap, [topic], partitions=2)
    await produce(
        bootstrap,
        [
            Record(
                topic=topic,
                partition=partition,
                key=f"key-{partition}".encode(),
                value=f"{partition}-{n}".encode(),
                headers=[("n", str(n).encode())],
            )
            for n in range(3)
            for partition in (0, 1)
        ],
    )
    with trio.fail_after(60):
        async with open_asyncio_bridge():
            async with consumer(kafka_broker, group, topic) as first:
                received = await receive(first, 6)
                assert where(received) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
                last = next(r for r in received if (r.partition, r.offset) == (1, 2))
                assert last == KafkaRecord(
                    topic=topic,
                    partition=1,
                    offset=2,
                    key=b"key-1",
                    value=b"1-2",
                    headers=(("n", b"2"),),
                    timestamp=last.timestamp,
                    generation=1,
                )
                assert last.timestamp > 0
                assert last.describe() == f"record {topic}/1@2"
                assert await committed_offsets(bootstrap, group, topic) == {}

                handled = [
                    r for r in received if (r.partition, r.offset) in {(0, 0), (0, 1), (1, 0)}
                ]
                assert await first.commit(handled) == 2
                assert await committed_offsets(bootstrap, group, topic) == {0: 2, 1: 1}
                assert await first.commit(handled[:1]) == 0  # never below what was committed
                assert await first.commit([]) == 0
                assert await committed_offsets(bootstrap, group, topic) == {0: 2, 1: 1}

            async with consumer(kafka_broker, group, topic) as second:
                again = await receive(second, 3)
                assert where(again) == [(0, 2), (1, 1), (1, 2)]
                assert await second.commit(again) == 2
            assert await committed_offsets(bootstrap, group, topic) == {0: 3, 1: 3}


async def test_statistics_follow_the_assignment_the_lag_and_the_commits(
    kafka_broker: KafkaBroker,
) -> None:
    """``joining`` with nothing assigned until the group assigned the partitions, then
    ``connected`` with each partition's committed offset and end (known after a fetch), the
    lag their difference; ``closed`` once the block ended."""
    bootstrap, topic, group = kafka_broker.bootstrap, unique("statistics"), unique("group")
    await create_topics(bootstrap, [topic], partitions=2)
    await produce(
        bootstrap,
        [Record(topic=topic, partition=0, value=f"{n}".encode()) for n in range(3)]
        + [Record(topic=topic, partition=1, value=b"only")],
    )
    with trio.fail_after(60):
        async with open_asyncio_bridge():
            async with consumer(kafka_broker, group, topic) as member:
                before = member.statistics()
                assert before == KafkaConsumerStatistics(
                    state="connecting",
                    brokers=bootstrap,
                    group=group,
                    topics=(topic,),
                    partitions=(),
                    received_total=0,
                    committed_total=0,
                    rebalances_total=0,
                )
                assert before.lag == 0

                received = await receive(member, 4)
                fetched = member.statistics()
                assert (fetched.state, fetched.rebalances_total) == ("connected", 1)
                assert fetched.partitions == (
                    PartitionLag(topic=topic, partition=0, committed=None, end=3),
                    PartitionLag(topic=topic, partition=1, committed=None, end=1),
                )
                assert (fetched.lag, fetched.received_total, fetched.committed_total) == (4, 4, 0)

                first_two = [r for r in received if r.partition == 0 and r.offset < 2]
                assert await member.commit(first_two) == 1
                partly = member.statistics()
                assert [(p.committed, p.end, p.lag) for p in partly.partitions] == [
                    (2, 3, 1),
                    (None, 1, 1),
                ]
                assert (partly.lag, partly.committed_total) == (2, 1)

                assert await member.commit(received) == 2
                done = member.statistics()
                assert [(p.committed, p.lag) for p in done.partitions] == [(3, 0), (1, 0)]
                assert (done.lag, done.committed_total) == (0, 3)
            assert member.state == "closed"
            assert member.statistics().state == "closed"


async def test_a_rebalance_commits_what_the_first_member_handled_and_loses_nothing(
    kafka_broker: KafkaBroker,
) -> None:
    """Member one reads 4 partitions, commits some records and hands others to a ``commit``
    that is cancelled before it was sent. When member two joins, the revocation commits those
    too; records of partitions it lost are then committed by nobody but their new owner; and
    what both read afterwards is every record beyond the committed offsets, exactly once."""
    bootstrap, topic, group = kafka_broker.bootstrap, unique("rebalance"), unique("group")
    await create_topics(bootstrap, [topic], partitions=4)
    await produce(
        bootstrap,
        [
            Record(topic=topic, partition=partition, value=f"{partition}-{n}".encode())
            for n in range(10)
            for partition in range(4)
        ],
    )
    everything = {(partition, n) for partition in range(4) for n in range(10)}
    with trio.fail_after(90):
        async with (
            open_asyncio_bridge(),
            consumer(kafka_broker, group, topic, max_batch=40) as first,
        ):
            received = sorted(await receive(first, 40), key=lambda r: (r.partition, r.offset))
            assert where(received) == sorted(everything)
            of = {p: [r for r in received if r.partition == p] for p in range(4)}
            assert await first.commit(of[0][:3] + of[1][:3]) == 2
            with trio.CancelScope() as cancelled:
                cancelled.cancel()
                await first.commit(of[1][3:6] + of[2][:4])  # handled, never sent
            assert cancelled.cancelled_caught
            assert await committed_offsets(bootstrap, group, topic) == {0: 3, 1: 3}

            async with consumer(kafka_broker, group, topic) as second:

                def rebalanced() -> bool:
                    one, two = first.statistics(), second.statistics()
                    return (
                        (one.state, two.state) == ("connected", "connected")
                        and (one.rebalances_total, two.rebalances_total) == (2, 1)
                        and assigned(first) | assigned(second) == {0, 1, 2, 3}
                    )

                await wait_until(rebalanced, 0.05)
                committed = {0: 3, 1: 6, 2: 4}  # partition 3: nothing was handled
                assert await committed_offsets(bootstrap, group, topic) == committed
                assert assigned(first).isdisjoint(assigned(second))

                lost = [r for r in received if r.partition in assigned(second)]
                assert await first.commit(lost) == 0
                assert await committed_offsets(bootstrap, group, topic) == committed

                beyond = {(p, n) for p, n in everything if n >= committed.get(p, 0)}
                after = await drain([first, second], beyond)
                assert Counter(where(after)) == Counter(sorted(beyond))  # each exactly once
                assert {r.generation for r in after if r.partition in assigned(first)} == {2}
                assert {r.generation for r in after if r.partition in assigned(second)} == {1}
                assert await committed_offsets(bootstrap, group, topic) == dict.fromkeys(
                    range(4), 10
                )
                assert first.statistics().lag == second.statistics().lag == 0


async def test_a_commit_the_broker_cannot_take_does_not_hold_up_the_next_join(
    kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit made while the broker is stopped fails within the operation timeout. The
    broker comes back without the group and the topic (memory storage): the member joins
    again, and the revocation's commit of the handled record, which the broker now refuses
    as often as aiokafka retries it, gives up after the operation timeout; the member then
    consumes what is produced after."""
    caplog.set_level(logging.INFO, logger=CONSUMER_LOG)
    bootstrap, topic, group = kafka_broker.bootstrap, unique("lost"), unique("group")
    await create_topics(bootstrap, [topic])
    await produce(bootstrap, [Record(topic=topic, value=b"before")])
    with trio.fail_after(60):
        async with (
            open_asyncio_bridge(),
            consumer(kafka_broker, group, topic, operation_timeout=1.0) as member,
        ):
            handled = await receive(member, 1)
            await kafka_broker.stop(kill=True)
            with pytest.raises(
                BrokerUnavailable,
                match=rf"committing offsets of group '{group}' did not finish within 1s; "
                rf"is Kafka at {bootstrap} reachable\?",
            ):
                await member.commit(handled)
            await kafka_broker.start()

            await wait_until(lambda: member.statistics().rebalances_total == 2, 0.05)
            assert (
                "Kafka offsets of revoked partitions not committed within 1s; those records "
                "come again and are deduplicated" in caplog.messages
            )
            # The topic came back with the broker's default partitions; the member still
            # knows of partition 0 only (its metadata is refreshed every few minutes).
            await produce(bootstrap, [Record(topic=topic, partition=0, value=b"after")])
            assert [r.value for r in await receive(member, 1)] == [b"after"]


async def produce_corrupt_batch(broker: KafkaBroker, topic: str) -> int:
    """Write a record batch whose CRC does not match its content to partition 0 of ``topic``
    (tansu stores batches as they come); the offset it got."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    builder.append(0, timestamp=None, key=b"key", value=b"damaged", headers=[])
    batch = bytearray(builder.build())
    batch[-3] ^= 0xFF  # a byte of the value: the batch's CRC no longer matches
    request = ProduceRequest_v3(
        transactional_id=None, required_acks=-1, timeout=5000, topics=[(topic, [(0, bytes(batch))])]
    )
    stream = await trio.open_tcp_stream(HOST, broker.port)
    async with stream:
        await stream.send_all(encode_request(request, 1, "corrupter"))
        payload = await FrameReader(stream).next()
    assert payload is not None
    _, response = decode_response(request, payload)
    [(_, [(_, error_code, offset, *_)])] = response.topics
    assert error_code == 0
    return int(offset)


async def test_a_corrupt_record_ends_the_consumer_with_the_reason(
    kafka_broker: KafkaBroker,
) -> None:
    """A fetch that fails for good (aiokafka refuses a batch whose CRC does not match) ends
    the block with ``BrokerUnavailable`` naming the reason, and with nothing else (the reader
    is cancelled, it does not see the batches end)."""
    bootstrap, topic, group = kafka_broker.bootstrap, unique("corrupt"), unique("group")
    await create_topics(bootstrap, [topic])
    assert await produce_corrupt_batch(kafka_broker, topic) == 0
    with trio.fail_after(60):
        async with open_asyncio_bridge():
            with pytest.RaisesGroup(
                pytest.RaisesExc(
                    BrokerUnavailable,
                    match=rf"^consuming from Kafka at {bootstrap} failed: (\[Error 2\] )?CorruptRecordException: "
                    rf".*Invalid CRC - TopicPartition\(topic='{topic}', partition=0\)",
                )
            ):
                async with consumer(kafka_broker, group, topic) as member:
                    while True:
                        await member.batches.receive()
            assert member.state == "closed"


# -- producing ---------------------------------------------------------------------------------


async def test_publish_keeps_the_order_of_each_key_across_batches(
    kafka_broker: KafkaBroker,
) -> None:
    """Two batches of interleaved keys: each key's records are on one partition, in the order
    they were published, with their headers."""
    bootstrap, topic = kafka_broker.bootstrap, unique("order")
    await create_topics(bootstrap, [topic], partitions=3)
    keys = [f"instance-{n}" for n in range(6)]
    batches = [
        [
            OutgoingRecord(
                topic=topic,
                key=key.encode(),
                value=f"{key}/{b}/{i}".encode(),
                headers=(("content-type", b"application/cloudevents+json"),),
            )
            for i in range(10)
            for key in keys
        ]
        for b in range(2)
    ]
    with trio.fail_after(60):
        async with open_asyncio_bridge(), producer(kafka_broker, idempotent=False) as kafka:
            for batch in batches:
                await kafka.publish(batch)
            await kafka.publish([])
            assert kafka.published_total == 120
        got = await consume_all(bootstrap, topic, expect=120, timeout=20)
    assert len(got) == 120
    assert {r.headers for r in got} == {(("content-type", b"application/cloudevents+json"),)}
    assert len({r.partition for r in got}) > 1  # the keys are spread, so order is per partition
    for key in keys:
        mine = [r for r in got if r.key == key.encode()]
        assert len({r.partition for r in mine}) == 1
        assert [r.value for r in mine] == [
            f"{key}/{b}/{i}".encode() for b in range(2) for i in range(10)
        ]


async def test_a_record_too_large_fails_naming_its_topic_and_the_others_are_written(
    kafka_broker: KafkaBroker,
) -> None:
    """A record over the producer's maximum request size is refused for good:
    ``PublishFailed`` names its topic and key and its position in ``refused``; the other
    records of the batch were acknowledged."""
    bootstrap, topic = kafka_broker.bootstrap, unique("large")
    await create_topics(bootstrap, [topic])
    batch = [
        OutgoingRecord(topic=topic, key=b"small", value=b"before"),
        OutgoingRecord(topic=topic, key=b"big-one", value=b"x" * (MAX_REQUEST_SIZE + 1)),
        OutgoingRecord(topic=topic, key=b"small", value=b"after"),
    ]
    with trio.fail_after(60):
        async with open_asyncio_bridge(), producer(kafka_broker, idempotent=False) as kafka:
            with pytest.raises(PublishFailed) as refused:
                await kafka.publish(batch)
            assert kafka.published_total == 0
        got = await consume_all(bootstrap, topic, expect=2, timeout=10)
    assert (refused.value.destination, refused.value.routing_key) == (topic, "big-one")
    assert refused.value.refused == (1,)
    assert str(refused.value).startswith(
        f"1 of 3 records not acknowledged; topic '{topic}': [Error 10] MessageSizeTooLargeError: "
    )
    assert [r.value for r in got] == [b"before", b"after"]


async def test_a_broker_without_idempotent_producers_gets_a_plain_one_and_one_warning(
    kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """tansu refuses InitProducerId: the producer falls back without idempotence, says so in
    one WARNING of its own (aiokafka's ERROR about it is dropped) and produces; asked for no
    idempotence, it says nothing."""
    caplog.set_level(logging.WARNING)
    bootstrap, topic = kafka_broker.bootstrap, unique("idempotence")
    await create_topics(bootstrap, [topic])
    with trio.fail_after(60):
        async with open_asyncio_bridge():
            async with producer(kafka_broker) as fallback:
                assert fallback.idempotent is False
                await fallback.publish([OutgoingRecord(topic=topic, value=b"written")])
            warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert [(r.name, r.levelname) for r in warnings] == [(PRODUCER_LOG, "WARNING")]
            assert (
                warnings[0]
                .getMessage()
                .startswith(
                    f"Kafka at {bootstrap} refused an idempotent producer id ([Error -1] UnknownError "
                )
            )
            caplog.clear()
            async with producer(kafka_broker, idempotent=False) as plain:
                assert plain.idempotent is False
            assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        got = await consume_all(bootstrap, topic, expect=1, timeout=10)
    assert [r.value for r in got] == [b"written"]


# -- topics ------------------------------------------------------------------------------------


async def test_ensure_topics_creates_only_the_missing_ones(kafka_broker: KafkaBroker) -> None:
    """The missing topics are created with the partitions asked for, once each, and returned;
    an existing topic is left as it is; a second call creates nothing; a broker that cannot
    be reached is ``BrokerUnavailable``."""
    bootstrap, existing, first, second = (
        kafka_broker.bootstrap,
        unique("existing"),
        unique("first"),
        unique("second"),
    )
    await create_topics(bootstrap, [existing])
    with trio.fail_after(60):
        async with open_asyncio_bridge():
            wanted = [first, existing, second, first]
            kafka = options(kafka_broker)
            assert await ensure_topics(kafka, wanted, brokers=bootstrap, partitions=3) == [
                first,
                second,
            ]
            assert await ensure_topics(kafka, wanted, brokers=bootstrap, partitions=3) == []
            assert await end_offsets(bootstrap, first) == {0: 0, 1: 0, 2: 0}
            assert await end_offsets(bootstrap, existing) == {0: 0}

            await kafka_broker.stop(kill=True)
            with pytest.raises(BrokerUnavailable, match=f"at {bootstrap}"):
                await ensure_topics(kafka, [unique("late")], brokers=bootstrap, partitions=1)


# -- the broker away ---------------------------------------------------------------------------


def connection_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ERROR records of aiokafka in ``caplog``."""
    return [
        r for r in caplog.records if r.name.startswith("aiokafka") and r.levelno >= logging.ERROR
    ]


async def test_while_the_broker_is_away_aiokafka_errors_become_one_warning(
    kafka_broker: KafkaBroker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the broker stopped, publishing fails within the operation timeout, aiokafka's
    connection ERRORs do not reach the root logger and one WARNING of ours quotes one of them;
    with the root logger at DEBUG they pass. The consumer's block then ends cleanly although
    the broker is still away."""
    # The rule says it once per 30 s and per process: forget an earlier test's WARNING.
    monkeypatch.setattr(_logs._RULES, "_last_reported", float("-inf"))
    caplog.set_level(logging.WARNING)
    bootstrap, topic, group = kafka_broker.bootstrap, unique("away"), unique("group")
    await create_topics(bootstrap, [topic])
    with trio.fail_after(60):
        async with (
            open_asyncio_bridge(),
            producer(kafka_broker, idempotent=False, operation_timeout=1.0) as kafka,
        ):
            async with consumer(kafka_broker, group, topic, operation_timeout=1.0) as member:
                await kafka.publish([OutgoingRecord(topic=topic, value=b"before")])
                assert [r.value for r in await receive(member, 1)] == [b"before"]
                await kafka_broker.stop(kill=True)
                with pytest.raises(
                    BrokerUnavailable,
                    match=rf"^producing 1 records to \['{topic}'\] did not finish within 1s; "
                    rf"is Kafka at {bootstrap} reachable\?$",
                ):
                    await kafka.publish([OutgoingRecord(topic=topic, value=b"during")])

                def ours() -> list[logging.LogRecord]:
                    return [r for r in caplog.records if r.name == LOG_RULES_LOG]

                await wait_until(lambda: bool(ours()), 0.05)
                assert connection_errors(caplog) == []
                [warning] = ours()
                assert warning.levelno == logging.WARNING
                assert warning.getMessage().startswith("Kafka connection trouble: ")
                assert "reconnecting in the background" in warning.getMessage()

                caplog.set_level(logging.DEBUG)
                await wait_until(lambda: bool(connection_errors(caplog)), 0.05)
                caplog.set_level(logging.WARNING)
            assert member.state == "closed"
            assert len(ours()) == 1
            await kafka_broker.start()  # the producer flushes what it still holds and stops
