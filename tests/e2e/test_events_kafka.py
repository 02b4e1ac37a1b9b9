"""Event processing over Kafka, end to end: the service consumes CloudEvents from the business
topic as a consumer group (structured and binary mode), routes them to waiting ``listen`` tasks
exactly once despite duplicates, consumer restarts and broker restarts, dead-letters what is
not a CloudEvent, and produces ``emit`` and lifecycle events through the outbox, keyed by
instance id.

The broker is tansu (``tests/support/kafka.py``): memory storage for the short tests, durable
storage (S3 on moto) where the broker restarts. Every test has its own topics and group
(uuid suffix) or its own broker. Consumer-group joins on tansu take about half the session
timeout, so the in-process tests use the shortest one Kafka allows (6s).
"""

from __future__ import annotations

import json
import random
import signal
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from tests.support.certificates import CertificateAuthority
from tests.support.event_flows import (
    assert_each_paid_once,
    broker_state,
    payment,
    start_many,
    wait_connected,
    wait_statuses,
)
from tests.support.events import EMITTER, INSTANCES, PAYMENT_CONFIRMER, PAYMENT_WAITER_WITH_ORDER
from tests.support.guide import guide_blocks, is_application_yaml, require_guide
from tests.support.kafka import KafkaBroker, open_kafka_broker
from tests.support.kafka_clients import ConsumedRecord, Record, consume_all, produce
from tests.support.kafka_front import open_kafka_front
from tests.support.process import RunningService, run_service
from tests.support.rabbitmq import unique_suffix
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

STRUCTURED = b"application/cloudevents+json"


@attrs.frozen
class Topics:
    """The test's own topics and consumer group."""

    suffix: str

    @property
    def business(self) -> str:
        return f"business-{self.suffix}"

    @property
    def system(self) -> str:
        return f"system-{self.suffix}"

    @property
    def group(self) -> str:
        return f"orchestrator-{self.suffix}"

    @property
    def dead_letter(self) -> str:
        return f"{self.group}.dead-letter"

    def settings(self, broker: KafkaBroker) -> dict[str, Any]:
        return {
            "eventProcessing.source": "kafka",
            "eventProcessing.kafka.bootstrapServers": broker.bootstrap,
            "eventProcessing.kafka.topics": [self.business, self.system],
            "eventProcessing.kafka.consumerGroup": self.group,
            "eventProcessing.kafka.sessionTimeout": "6s",
            "eventProcessing.kafka.topicPartitions": 4,
        }


@pytest.fixture
def topics() -> Topics:
    return Topics(unique_suffix())


def structured(topic: str, event: dict[str, Any], key: str) -> Record:
    """``event`` as a structured-mode record (the CloudEvents Kafka binding)."""
    return Record(
        topic=topic,
        key=key.encode(),
        value=json.dumps(event).encode(),
        headers=(("content-type", STRUCTURED),),
    )


def binary(topic: str, event: dict[str, Any], key: str) -> Record:
    """``event`` as a binary-mode record: ``ce_`` headers, the data as the value."""
    headers = [
        (f"ce_{name}", str(value).encode())
        for name, value in event.items()
        if name not in ("data", "datacontenttype")
    ]
    headers.append(("content-type", str(event["datacontenttype"]).encode()))
    return Record(
        topic=topic,
        key=key.encode(),
        value=json.dumps(event["data"]).encode(),
        headers=tuple(headers),
    )


async def produce_retrying(broker: KafkaBroker, records: list[Record]) -> int:
    """Produce until acknowledged, retrying the whole batch while the broker is away
    (duplicates are possible, losses are not); the number of failed attempts."""
    failures = 0
    while True:
        try:
            with trio.fail_after(15):
                await produce(broker.bootstrap, records)
            return failures
        except Exception:
            failures += 1
            await trio.sleep(0.5)


@attrs.define
class Progress:
    """How far ``flowing`` got: ``third`` is set once a third of the chunks were produced."""

    chunks: int
    sent: int = 0
    third: trio.Event = attrs.Factory(trio.Event)

    @property
    def done(self) -> bool:
        return self.sent == self.chunks


@asynccontextmanager
async def flowing(broker: KafkaBroker, records: list[Record]) -> AsyncIterator[Progress]:
    """Produce ``records`` in the background in chunks of 25 (retrying a chunk while the broker
    is away) for the block, which ends once they all were acknowledged."""
    chunks = [records[n : n + 25] for n in range(0, len(records), 25)]
    progress = Progress(chunks=len(chunks))

    async def produce_all() -> None:
        for chunk in chunks:
            await produce_retrying(broker, chunk)
            progress.sent += 1
            if progress.sent * 3 >= progress.chunks:
                progress.third.set()
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce_all)
        yield progress


async def health_with_broker_error(management: httpx.AsyncClient, fragment: str) -> Any:
    """The detailed health document, once its ``brokerError`` contains ``fragment`` (the
    caller bounds the wait; the service signals nothing a test can wait on)."""
    while True:
        body = (await management.get("/health/detailed")).json()
        if fragment in body["components"]["eventProcessing"]["details"].get("brokerError", ""):
            return body
        await trio.sleep(0.2)


async def metric_total(management: httpx.AsyncClient, name: str, *labels: str) -> float:
    """The sum of the samples of ``name`` whose labels contain every one of ``labels``."""
    text = (await management.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") and all(label in line for label in labels)
    )


# -- the guide's core configuration, 1,000 instances, restarts ----------------------------------


def core_configuration(log_file: Path) -> str:
    """The guide's core ``application.yaml`` as written, but for the log file (a test does not
    write to /var/log); the database and the broker come from DATABASE_* and
    KAFKA_BOOTSTRAP_SERVERS, as the guide's environment variables say."""
    (text,) = [
        block.text
        for block in guide_blocks(require_guide())
        if is_application_yaml(block) and block.heading == "Core Configuration File"
    ]
    assert "source: kafka" in text and "bootstrapServers: kafka:9092" in text
    guide_path = "/var/log/workflow-orchestrator/service.log"
    assert guide_path in text
    return text.replace(guide_path, str(log_file))


@contextmanager
def guide_service(
    folder: Path, config: Path, broker: KafkaBroker, database_url: str
) -> Iterator[RunningService]:
    folder.mkdir()
    url = httpx.URL(database_url)
    with run_service(
        folder,
        args=("--config", str(config)),
        env={
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "DATABASE_URL": f"jdbc:postgresql://{url.host}:{url.port or 5432}{url.path}",
            "DATABASE_USERNAME": url.username or "postgres",
            "DATABASE_PASSWORD": url.password or "unused",
        },
    ) as service:
        yield service


async def service_connected(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.management) as management:
        with trio.fail_after(60):
            await wait_connected(management)


@pytest.mark.slow
async def test_guide_configuration_thousand_instances_survive_consumer_and_broker_restarts(
    tmp_path: Path, database_url: str
) -> None:
    """The guide's core application.yaml runs against Kafka: 1,000 instances waiting on
    correlated listens each complete exactly once with their own payment, sent on
    business-events in structured and binary mode with 10% duplicates, while the service (the
    consumer) and then the broker restart mid-way; poison records go to the dead-letter topic."""
    count = 1000
    orders = [f"G-{n:04d}" for n in range(count)]
    amounts = {order: 1000 + n for n, order in enumerate(orders)}
    events = {order: payment(order, amounts[order]) for order in orders}
    records = [
        (structured if n % 2 else binary)("business-events", events[order], order)
        for n, order in enumerate(orders)
    ]
    # A duplicate is the same event (same source and id), in either mode, sent again later.
    duplicates = [
        (binary if n % 2 else structured)("business-events", events[order], order)
        for n, order in enumerate(random.sample(orders, count // 10))
    ]
    flow = records + duplicates
    random.shuffle(flow)
    poison = [
        Record(
            topic="business-events",
            key=b"P-1",
            value=b"{not json",
            headers=(("content-type", STRUCTURED),),
        ),
        Record(
            topic="business-events",
            key=b"P-2",
            value=b'{"orderId": "X"}',
            headers=(("ce_specversion", b"1.0"), ("ce_type", b"payment.received")),
        ),
    ]
    # Two waves: the consumer restarts during the first, the broker during the second.
    half = len(flow) // 2
    waves = [[*flow[:50], *poison, *flow[50:half]], flow[half:]]
    config = tmp_path / "application.yaml"
    config.write_text(core_configuration(tmp_path / "service-file.log"))
    with trio.fail_after(420):
        async with open_kafka_broker(storage="durable", log_folder=tmp_path) as broker:
            with guide_service(tmp_path / "first", config, broker, database_url) as first:
                await service_connected(first)
                async with httpx.AsyncClient(base_url=f"{first.api}/api", timeout=30) as api:
                    response = await api.post(
                        "/v1/workflow-definitions",
                        content=PAYMENT_WAITER_WITH_ORDER,
                        headers={"Content-Type": "application/yaml"},
                    )
                    assert response.status_code == 201, response.text
                    ids = await start_many(api, "payment-waiter", orders)
                await wait_statuses(database_url, "payment-waiter", "waiting", count, seconds=120)
                # The consumer restarts: the service stops (leaving the group) while the
                # first wave is being produced, and a new one takes over.
                async with flowing(broker, waves[0]) as progress:
                    await progress.third.wait()
                    first.stop(signal.SIGTERM)
                    assert not progress.done, "the service stopped after the flow"
            with guide_service(tmp_path / "second", config, broker, database_url) as second:
                await service_connected(second)
                # The broker restarts (durable storage: records and offsets survive) while
                # the second wave is being produced.
                async with flowing(broker, waves[1]) as progress:
                    await progress.third.wait()
                    await broker.restart()
                    assert not progress.done, "the broker restarted after the flow"
                await service_connected(second)
                await wait_statuses(database_url, "payment-waiter", "completed", count, seconds=180)
                await assert_each_paid_once(database_url, "payment-waiter", ids, amounts)
                dead = await consume_all(
                    broker.bootstrap,
                    "workflow-orchestrator.dead-letter",
                    expect=len(poison),
                    timeout=30,
                )
                log = second.log() + first.log()
            assert "Traceback" not in log, log[-4000:]
            assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line]
    reasons = {record.key: (record.header("x-rejection-reason") or b"").decode() for record in dead}
    assert reasons.keys() == {b"P-1", b"P-2"}, reasons
    assert "not valid JSON" in reasons[b"P-1"], reasons
    assert "no 'id' and 'source' attributes" in reasons[b"P-2"], reasons
    for record in dead:
        assert record.header("x-original-topic") == b"business-events"


# -- poison records ------------------------------------------------------------------------------


async def test_poison_records_are_dead_lettered_and_nothing_behind_them_stalls(
    database_url: str, kafka_broker: KafkaBroker, topics: Topics
) -> None:
    """Records that are not CloudEvents land in <group>.dead-letter with the reason and where
    they came from; the valid events of the same partition, before and after, are routed."""
    orders = ["P-1", "P-2", "P-3"]
    amounts = {"P-1": 1, "P-2": 2, "P-3": 3}
    no_id = payment("X", 0)
    del no_id["id"]
    key = "same-partition"  # every record on one partition: poison between valid events
    poison = {
        b"text": Record(
            topic=topics.business,
            key=key.encode(),
            value=b"{not json",
            headers=(("content-type", STRUCTURED), ("case", b"text")),
        ),
        b"noid": Record(
            topic=topics.business,
            key=key.encode(),
            value=json.dumps(no_id).encode(),
            headers=(("content-type", STRUCTURED), ("case", b"noid")),
        ),
        b"tombstone": Record(
            topic=topics.business, key=key.encode(), value=b"", headers=(("case", b"tombstone"),)
        ),
        b"nosource": Record(
            topic=topics.business,
            key=key.encode(),
            value=b'{"orderId": "X"}',
            headers=(
                ("ce_specversion", b"1.0"),
                ("ce_id", b"bin-1"),
                ("ce_type", b"payment.received"),
                ("case", b"nosource"),
            ),
        ),
    }
    expected = {
        b"text": "not valid JSON",
        b"noid": "no 'id' attribute",
        b"tombstone": "",
        b"nosource": "no 'source' attribute",
    }
    with trio.fail_after(90):
        async with open_service(database_url, settings=topics.settings(kafka_broker)) as app:
            await register_yaml(app, PAYMENT_WAITER_WITH_ORDER)
            await wait_connected(app.management)
            ids = await start_many(app.api, "payment-waiter", orders)
            await wait_statuses(database_url, "payment-waiter", "waiting", 3, seconds=30)
            flow = [
                structured(topics.business, payment("P-1", 1), key),
                poison[b"text"],
                poison[b"noid"],
                binary(topics.business, payment("P-2", 2), key),
                poison[b"tombstone"],
                poison[b"nosource"],
                structured(topics.business, payment("P-3", 3), key),
            ]
            await produce(kafka_broker.bootstrap, flow)
            await wait_statuses(database_url, "payment-waiter", "completed", 3, seconds=30)
            await assert_each_paid_once(database_url, "payment-waiter", ids, amounts)
            dead = await consume_all(
                kafka_broker.bootstrap, topics.dead_letter, expect=len(poison), timeout=20
            )
            dead_lettered = await metric_total(
                app.management, "workflow_orchestrator_events_dead_lettered_total", 'source="kafka"'
            )
    assert len(dead) == len(poison), [r.headers for r in dead]
    by_case = {_case(record): record for record in dead}
    assert by_case.keys() == expected.keys(), by_case.keys()
    for case, fragment in expected.items():
        record = by_case[case]
        reason = (record.header("x-rejection-reason") or b"").decode()
        assert reason and fragment in reason, (case, reason)
        assert record.header("x-original-topic") == topics.business.encode()
        assert record.key == key.encode()
        assert record.value == (poison[case].value or b"")
    assert dead_lettered == len(poison)


def _case(record: ConsumedRecord) -> bytes:
    return record.header("case") or b""


# -- emitted and lifecycle events, health and metrics --------------------------------------------


async def test_emitted_and_lifecycle_events_reach_their_topics_keyed_by_instance(
    database_url: str, kafka_broker: KafkaBroker, topics: Topics
) -> None:
    """``emit`` arrives on the business topic and the lifecycle events on the system topic, as
    structured CloudEvents keyed by the instance id; the health details show the group's
    partitions and lag, and /metrics the lag per partition."""
    with trio.fail_after(90):
        async with open_service(database_url, settings=topics.settings(kafka_broker)) as app:
            await register_yaml(app, EMITTER)
            await wait_connected(app.management)
            (instance_id,) = (await start_many(app.api, "emitter", ["E-1"])).values()
            await wait_statuses(database_url, "emitter", "completed", 1, seconds=30)
            emitted = await consume_all(
                kafka_broker.bootstrap, topics.business, expect=1, timeout=20
            )
            lifecycle = await consume_all(
                kafka_broker.bootstrap, topics.system, expect=2, timeout=20
            )
            history = (await app.api.get(f"{INSTANCES}/{instance_id}/history")).json()["items"]
            # The service consumes its own business topic (the emitted event comes back to it):
            # wait until it caught up, every partition's end known.
            with trio.fail_after(20):
                while True:
                    health = (await app.management.get("/health/detailed")).json()
                    details = health["components"]["eventProcessing"]["details"]
                    ends = [p["endOffset"] for p in details.get("assignedPartitions", [])]
                    if ends and None not in ends and details["consumerLag"] == 0:
                        break
                    await trio.sleep(0.2)
            metrics = (await app.management.get("/metrics")).text

    (record,) = emitted
    assert record.key == instance_id.encode()
    assert record.header("content-type") == STRUCTURED
    event = json.loads(record.value or b"")
    assert (event["type"], event["source"], event["data"]) == (
        "shipment.ready",
        "https://shop.example/emitter",
        {"orderId": "E-1"},
    )
    recorded = [item for item in history if item["kind"] == "event.emitted"]
    assert recorded and event["id"] in json.dumps(recorded), (event, recorded)

    types = [json.loads(r.value or b"")["type"] for r in lifecycle]
    assert "io.serverlessworkflow.workflow.started.v1" in types, types
    assert "io.serverlessworkflow.workflow.completed.v1" in types, types
    assert types.index("io.serverlessworkflow.workflow.started.v1") < types.index(
        "io.serverlessworkflow.workflow.completed.v1"
    )
    assert {r.key for r in lifecycle} == {instance_id.encode()}
    assert len({r.partition for r in lifecycle}) == 1

    assert details["source"] == "kafka"
    assert details["broker"] == "connected"
    assert details["consumerGroup"] == topics.group
    assert details["deadLetterTopic"] == topics.dead_letter
    partitions = details["assignedPartitions"]
    assert sorted(p["partition"] for p in partitions) == [0, 1, 2, 3]
    assert {p["topic"] for p in partitions} == {topics.business}
    assert details["consumerLag"] == 0
    assert "workflow_orchestrator_broker_connected 1.0" in metrics
    assert (
        f'workflow_orchestrator_kafka_consumer_lag{{partition="0",topic="{topics.business}"}}'
        in metrics
    ), metrics
    assert "workflow_orchestrator_kafka_rebalances_total 1.0" in metrics
    assert f'workflow_orchestrator_events_published_total{{exchange="{topics.system}"}}' in metrics


# -- the broker away -----------------------------------------------------------------------------


async def test_broker_restart_while_events_flow_both_ways(
    tmp_path: Path, database_url: str, topics: Topics
) -> None:
    """A broker restart mid-flow loses no event and routes none twice; the health says the
    broker is away meanwhile, and the service resumes by itself; emitted confirmations all
    arrive (at least once, same ids)."""
    count = 200
    orders = [f"R-{n:03d}" for n in range(count)]
    amounts = {order: 100 + n for n, order in enumerate(orders)}
    batches = [orders[n : n + 10] for n in range(0, count, 10)]
    with trio.fail_after(240):
        async with (
            open_kafka_broker(storage="durable", log_folder=tmp_path) as broker,
            open_service(database_url, settings=topics.settings(broker)) as app,
        ):
            await register_yaml(app, PAYMENT_CONFIRMER)
            await wait_connected(app.management)
            ids = await start_many(app.api, "payment-confirmer", orders)
            await wait_statuses(database_url, "payment-confirmer", "waiting", count, seconds=60)
            seen: list[tuple[str, str | None]] = []
            for n, batch in enumerate(batches):
                await produce_retrying(
                    broker,
                    [structured(topics.business, payment(o, amounts[o]), o) for o in batch],
                )
                if n == len(batches) // 3:
                    await broker.stop()
                    with trio.fail_after(30):
                        # The state changes inside the service, which signals nothing.
                        while (state := await broker_state(app.management))[  # noqa: ASYNC110
                            1
                        ] == "connected":
                            await trio.sleep(0.2)
                    seen.append(state)
                    await broker.start()
            await wait_statuses(database_url, "payment-confirmer", "completed", count, seconds=120)
            await assert_each_paid_once(database_url, "payment-confirmer", ids, amounts)
            confirmations = await consume_all(
                broker.bootstrap, topics.business, expect=2 * count, timeout=60
            )
            with trio.fail_after(60):
                await wait_connected(app.management)
    assert seen and seen[0][0] == "degraded", seen
    confirmed: dict[str, Any] = {}
    for record in confirmations:
        event = json.loads(record.value or b"")
        if event["type"] == "payment.confirmed":
            assert confirmed.setdefault(event["id"], event["data"]) == event["data"]
            assert record.key is not None
    assert sorted(d["orderId"] for d in confirmed.values()) == orders
    assert all(d["paid"] == amounts[d["orderId"]] for d in confirmed.values())


# -- client security ------------------------------------------------------------------------------


async def test_scram_over_tls_with_the_password_from_a_secret_file(
    tmp_path: Path, database_url: str, topics: Topics
) -> None:
    """SASL_SSL with SCRAM-SHA-512: the service trusts the configured CA, logs in with the
    password of ``${secret:kafka-password}`` (a mounted Secret file) and routes events; the
    front saw only accepted logins of that user."""
    authority = CertificateAuthority.create(tmp_path, "kafka")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka-password").write_text("s3cret-pass\n")
    with trio.fail_after(90):
        async with open_kafka_front(
            users={"orchestrator": "s3cret-pass"}, tls=authority, log_folder=tmp_path
        ) as front:
            settings = {
                **topics.settings(front.broker),
                "eventProcessing.kafka.bootstrapServers": front.bootstrap,
                "eventProcessing.kafka.securityProtocol": "SASL_SSL",
                "eventProcessing.kafka.sasl.mechanism": "SCRAM-SHA-512",
                "eventProcessing.kafka.sasl.username": "orchestrator",
                "eventProcessing.kafka.sasl.password": "${secret:kafka-password}",
                "eventProcessing.kafka.tls.caCertificate": str(front.ca_certificate),
                "security.secrets.providers": ["files"],
                "security.secrets.files.directory": str(secrets),
            }
            async with open_service(database_url, settings=settings) as app:
                await register_yaml(app, PAYMENT_WAITER_WITH_ORDER)
                await wait_connected(app.management)
                ids = await start_many(app.api, "payment-waiter", ["S-1"])
                await wait_statuses(database_url, "payment-waiter", "waiting", 1, seconds=30)
                client = front.client_security(
                    "orchestrator",
                    "s3cret-pass",
                    mechanism="SCRAM-SHA-512",
                    ssl_context=ssl.create_default_context(cafile=str(front.ca_certificate)),
                )
                await produce(
                    front.bootstrap,
                    [structured(topics.business, payment("S-1", 5), "S-1")],
                    security=client,
                )
                await wait_statuses(database_url, "payment-waiter", "completed", 1, seconds=30)
                await assert_each_paid_once(database_url, "payment-waiter", ids, {"S-1": 5})
                health = (await app.management.get("/health/detailed")).json()
    details = health["components"]["eventProcessing"]["details"]
    assert "s3cret-pass" not in json.dumps(health)
    assert details["brokerAddress"].startswith(front.bootstrap), details
    logins = {(a.mechanism, a.user, a.accepted) for a in front.authentications}
    assert ("SCRAM-SHA-512", "orchestrator", True) in logins, logins
    assert all(a.accepted for a in front.authentications), front.authentications


async def test_a_wrong_kafka_password_is_reported_and_retried(
    tmp_path: Path, database_url: str, topics: Topics
) -> None:
    """A refused login keeps the service up (degraded, retrying) and the health names the
    problem; no password appears in the health document or the log."""
    with trio.fail_after(60):
        async with open_kafka_front(users={"orchestrator": "right"}, log_folder=tmp_path) as front:
            settings = {
                **topics.settings(front.broker),
                "eventProcessing.kafka.bootstrapServers": front.bootstrap,
                "eventProcessing.kafka.securityProtocol": "SASL_PLAINTEXT",
                "eventProcessing.kafka.sasl.mechanism": "PLAIN",
                "eventProcessing.kafka.sasl.username": "orchestrator",
                "eventProcessing.kafka.sasl.password": "wrong-password",
            }
            async with open_service(database_url, settings=settings) as app:
                body = await health_with_broker_error(app.management, "SaslAuthenticationFailed")
    events = body["components"]["eventProcessing"]
    assert events["status"] == "degraded", events
    assert events["details"]["broker"] == "unreachable", events
    assert "wrong-password" not in json.dumps(body)
    assert any(not a.accepted and a.user == "orchestrator" for a in front.authentications)


async def test_missing_topics_without_create_topics_are_named_in_the_health(
    database_url: str, kafka_broker: KafkaBroker, topics: Topics
) -> None:
    """With createTopics: false and topics that do not exist, the service runs, retries, and
    the health names the missing topics and the setting that would create them."""
    settings = {**topics.settings(kafka_broker), "eventProcessing.kafka.createTopics": False}
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            body = await health_with_broker_error(app.management, "do not exist")
    events = body["components"]["eventProcessing"]
    error = events["details"]["brokerError"]
    assert events["status"] == "degraded", events
    for name in (topics.business, topics.system, topics.dead_letter):
        assert name in error, error
    assert "createTopics: true" in error, error
