"""The Kafka test broker of tests/support: tansu started, restarted and stopped by the tests,
its durable storage, the test-side client helpers, and the SASL/TLS front.

Every test starts its own broker (memory storage unless it tests durability) and names its
own topics and groups.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from pathlib import Path

import pytest
import trio
import trio_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from tests.support.certificates import CertificateAuthority, client_context
from tests.support.kafka import KafkaBroker, open_kafka_broker
from tests.support.kafka_clients import (
    ClientSecurity,
    ConsumedRecord,
    Record,
    committed_offsets,
    consume_all,
    create_topics,
    end_offsets,
    group_lag,
    on_asyncio,
    produce,
)
from tests.support.kafka_front import Authentication, open_kafka_front
from tests.support.sasl_server import (
    MECHANISMS,
    AuthenticationFailed,
    Credentials,
    ScramCredential,
    ScramExchange,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def consume_in_group(bootstrap: str, group: str, topic: str, count: int) -> list[bytes]:
    """Join ``group`` on ``topic``, read until ``count`` records arrived (10 s at most),
    commit and leave; returns the values read."""

    async def work() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while len(values) < count and asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                values.extend(m.value for batch in batches.values() for m in batch)
            await consumer.commit()
        finally:
            await consumer.stop()
        return values

    result: list[bytes] = await trio_asyncio.aio_as_trio(work)()
    return result


def records_on(topic: str, partition: int, values: list[bytes]) -> list[Record]:
    return [
        Record(topic=topic, partition=partition, key=value, value=value, headers=[("n", value)])
        for value in values
    ]


async def test_records_round_trip_with_keys_headers_and_offsets(kafka_broker: KafkaBroker) -> None:
    """What the helpers produce is read back with its key, headers, partition and offset."""
    topic = unique("roundtrip")
    await create_topics(kafka_broker.bootstrap, [topic], partitions=2)
    produced = await produce(
        kafka_broker.bootstrap,
        [
            Record(
                topic=topic, key=b"order-1", value=b"one", headers=[("ce_id", b"1")], partition=0
            ),
            Record(topic=topic, key=None, value=b"two", partition=1),
            Record(topic=topic, key=b"order-1", value=b"three", partition=0),
        ],
    )
    assert [(p.partition, p.offset) for p in produced] == [(0, 0), (1, 0), (0, 1)]
    got = await consume_all(kafka_broker.bootstrap, topic, expect=3, timeout=10)
    assert got == [
        ConsumedRecord(
            topic=topic,
            partition=0,
            offset=0,
            key=b"order-1",
            value=b"one",
            headers=(("ce_id", b"1"),),
            timestamp=got[0].timestamp,
        ),
        ConsumedRecord(
            topic=topic,
            partition=0,
            offset=1,
            key=b"order-1",
            value=b"three",
            headers=(),
            timestamp=got[1].timestamp,
        ),
        ConsumedRecord(
            topic=topic,
            partition=1,
            offset=0,
            key=None,
            value=b"two",
            headers=(),
            timestamp=got[2].timestamp,
        ),
    ]
    assert got[0].header("ce_id") == b"1"
    assert got[1].header("ce_id") is None
    assert await end_offsets(kafka_broker.bootstrap, topic) == {0: 2, 1: 1}


async def test_a_restart_with_durable_storage_keeps_messages_and_committed_offsets(
    tmp_path: Path,
) -> None:
    """After a crash (SIGKILL) and a start on the same port, durable storage still has every
    message, and a consumer of the same group continues after its committed offsets."""
    topic, group = unique("durable"), unique("group")
    async with open_kafka_broker(storage="durable", log_folder=tmp_path) as broker:
        await create_topics(broker.bootstrap, [topic], partitions=2)
        await produce(
            broker.bootstrap,
            records_on(topic, 0, [b"a1", b"a2", b"a3"]) + records_on(topic, 1, [b"b1", b"b2"]),
        )
        async with open_asyncio_bridge():
            first = await consume_in_group(broker.bootstrap, group, topic, count=5)
        assert sorted(first) == [b"a1", b"a2", b"a3", b"b1", b"b2"]
        assert await committed_offsets(broker.bootstrap, group, topic) == {0: 3, 1: 2}

        await broker.restart(kill=True)

        assert await committed_offsets(broker.bootstrap, group, topic) == {0: 3, 1: 2}
        kept = await consume_all(broker.bootstrap, topic, expect=5, timeout=10)
        assert [(r.partition, r.offset, r.key, r.header("n")) for r in kept] == [
            (0, 0, b"a1", b"a1"),
            (0, 1, b"a2", b"a2"),
            (0, 2, b"a3", b"a3"),
            (1, 0, b"b1", b"b1"),
            (1, 1, b"b2", b"b2"),
        ]
        await produce(
            broker.bootstrap, records_on(topic, 0, [b"a4"]) + records_on(topic, 1, [b"b3"])
        )
        assert await group_lag(broker.bootstrap, group, topic) == 2
        async with open_asyncio_bridge():
            after = await consume_in_group(broker.bootstrap, group, topic, count=2)
        assert sorted(after) == [b"a4", b"b3"]
        assert await committed_offsets(broker.bootstrap, group, topic) == {0: 4, 1: 3}
        assert await group_lag(broker.bootstrap, group, topic) == 0


async def test_memory_storage_forgets_everything_on_a_restart(kafka_broker: KafkaBroker) -> None:
    """A memory broker restarted on its port serves again, without the topics it had."""
    topic = unique("forgotten")
    await create_topics(kafka_broker.bootstrap, [topic])
    await produce(kafka_broker.bootstrap, [Record(topic=topic, value=b"lost")])
    port = kafka_broker.port

    await kafka_broker.restart()

    assert kafka_broker.port == port
    assert await consume_all(kafka_broker.bootstrap, topic, expect=1, timeout=1) == []
    await create_topics(kafka_broker.bootstrap, [topic])
    assert await end_offsets(kafka_broker.bootstrap, topic) == {0: 0}


async def test_a_start_that_fails_shows_the_tail_of_the_broker_log(
    kafka_broker: KafkaBroker,
) -> None:
    """When the broker cannot start (its port was taken meanwhile), start() says so with the
    end of its log, and the broker counts as stopped."""
    await kafka_broker.stop()
    listeners = await trio.open_tcp_listeners(kafka_broker.port, host="127.0.0.1")
    try:
        with pytest.raises(RuntimeError) as failure:
            await kafka_broker.start()
    finally:
        for listener in listeners:
            await listener.aclose()
    message = str(failure.value)
    assert f"the Kafka test broker (tansu, memory://tansu/) on {kafka_broker.bootstrap} " in message
    assert f"its log {kafka_broker.log_path} ends with:" in message
    assert "Address in use" in message
    assert not kafka_broker.running


# -- the SASL and TLS front ---------------------------------------------------------------------


def test_the_scram_server_follows_the_rfc_7677_example() -> None:
    """The SCRAM-SHA-256 exchange of RFC 7677 (user "user", password "pencil") gives the
    RFC's server messages; a changed proof is refused."""
    credential = ScramCredential.create(
        "pencil", "SCRAM-SHA-256", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    )
    credentials = Credentials(passwords={}, scram={("SCRAM-SHA-256", "user"): credential})
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    client_final = f"c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    for proof_changed in (False, True):
        exchange = ScramExchange(
            credentials, "SCRAM-SHA-256", server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        )
        first = exchange.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        assert first == f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode()
        if not proof_changed:
            final = exchange.step(client_final.encode())
            assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
            assert (exchange.complete, exchange.user) == (True, "user")
            continue
        with pytest.raises(AuthenticationFailed, match="invalid credentials with SASL mechanism"):
            exchange.step(client_final.replace("p=dH", "p=dI").encode())
        assert not exchange.complete


USERS = {"alice": "wonder-land", "bob": "b=ob,pa ss"}


async def start_producer(bootstrap: str, security: ClientSecurity) -> None:
    """Start (connect, authenticate) and stop an aiokafka producer."""

    async def work() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, **security.options()
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    await on_asyncio(work)


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_front_accepts_each_mechanism_with_the_right_password(
    tmp_path: Path, mechanism: str
) -> None:
    """Through the front, a client authenticated with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    creates a topic, produces and reads back; metadata keeps it on the front."""
    topic = unique("sasl")
    async with open_kafka_front(users=USERS, log_folder=tmp_path) as front:
        security = front.client_security("bob", USERS["bob"], mechanism=mechanism)
        await create_topics(front.bootstrap, [topic], security=security)
        await produce(
            front.bootstrap, [Record(topic=topic, key=b"k", value=b"v")], security=security
        )
        got = await consume_all(front.bootstrap, topic, expect=1, timeout=10, security=security)
        assert [(r.key, r.value) for r in got] == [(b"k", b"v")]
        assert front.broker.advertised == front.bootstrap
        assert front.authentications
        assert set(front.authentications) == {Authentication(mechanism, "bob", True)}


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_front_refuses_a_wrong_password_and_an_unknown_user(
    tmp_path: Path, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password and an unknown user fail the client's start; aiokafka logs Kafka's
    authentication error (58) with the broker's message."""
    message = (
        "Authentication failed: Invalid username or password"
        if mechanism == "PLAIN"
        else "Authentication failed during authentication due to invalid credentials with "
        f"SASL mechanism {mechanism}"
    )
    # aiokafka's records pass the service's log filter (adapters.kafka._logs) at DEBUG only.
    caplog.set_level(logging.DEBUG)
    async with open_kafka_front(users=USERS, log_folder=tmp_path) as front:
        for user, password in (("alice", "wonder-land!"), ("mallory", "wonder-land")):
            caplog.clear()
            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from"):
                await start_producer(
                    front.bootstrap, front.client_security(user, password, mechanism=mechanism)
                )
            assert f"[Error 58] SaslAuthenticationFailed: {message}" in caplog.text
        assert front.authentications == [
            Authentication(mechanism, "alice", False, message),
            Authentication(mechanism, "mallory", False, message),
        ]


async def test_the_front_refuses_a_mechanism_it_does_not_offer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client asking for a mechanism the front does not enable fails its start with Kafka's
    UNSUPPORTED_SASL_MECHANISM (33); an enabled one is accepted."""
    caplog.set_level(logging.DEBUG)
    async with open_kafka_front(
        users=USERS, mechanisms=("SCRAM-SHA-512",), log_folder=tmp_path
    ) as front:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from"):
            await start_producer(
                front.bootstrap, front.client_security("alice", USERS["alice"], mechanism="PLAIN")
            )
        assert "[Error 33] UnsupportedSaslMechanismError" in caplog.text
        assert front.authentications == [
            Authentication("PLAIN", None, False, "unsupported mechanism PLAIN")
        ]
        await start_producer(
            front.bootstrap,
            front.client_security("alice", USERS["alice"], mechanism="SCRAM-SHA-512"),
        )


async def test_tls_with_sasl_works_and_a_client_not_trusting_the_ca_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SASL over TLS (SASL_SSL) works for a client trusting the front's CA; a client
    trusting another CA fails its TLS handshake and its start."""
    caplog.set_level(logging.DEBUG)  # aiokafka's records pass the service's filter at DEBUG
    authority = CertificateAuthority.create(tmp_path, "kafka")
    stranger = CertificateAuthority.create(tmp_path, "stranger")
    topic = unique("tls")
    async with open_kafka_front(users=USERS, tls=authority, log_folder=tmp_path) as front:
        security = front.client_security("alice", USERS["alice"], mechanism="SCRAM-SHA-256")
        assert security.security_protocol == "SASL_SSL"
        assert front.ca_certificate == authority.certificate_path
        await create_topics(front.bootstrap, [topic], security=security)
        await produce(front.bootstrap, [Record(topic=topic, value=b"secret")], security=security)
        got = await consume_all(front.bootstrap, topic, expect=1, timeout=10, security=security)
        assert [r.value for r in got] == [b"secret"]

        untrusting = front.client_security(
            "alice", USERS["alice"], mechanism="SCRAM-SHA-256", ssl_context=client_context(stranger)
        )
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from"):
            await start_producer(front.bootstrap, untrusting)
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
        assert all(a.accepted for a in front.authentications)


async def test_tls_without_sasl_and_client_certificates(tmp_path: Path) -> None:
    """A TLS-only front that requires client certificates serves a client presenting one
    issued by its CA and refuses a client without one."""
    authority = CertificateAuthority.create(tmp_path, "kafka")
    async with open_kafka_front(
        tls=authority, require_client_certificate=True, log_folder=tmp_path
    ) as front:
        with_certificate = front.client_security(
            ssl_context=client_context(authority, certificate=authority.issue_client())
        )
        assert with_certificate.security_protocol == "SSL"
        await start_producer(front.bootstrap, with_certificate)
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from"):
            await start_producer(front.bootstrap, front.client_security())
        assert front.authentications == []


async def test_a_client_authenticates_again_after_its_connections_were_severed(
    tmp_path: Path,
) -> None:
    """``sever_connections`` drops a running producer's connections; it reconnects through
    the front, authenticates again and goes on producing."""
    topic = unique("severed")
    async with open_kafka_front(users=USERS, log_folder=tmp_path) as front:
        security = front.client_security("bob", USERS["bob"], mechanism="SCRAM-SHA-512")
        await create_topics(front.bootstrap, [topic], security=security)
        async with open_asyncio_bridge():
            producer = AIOKafkaProducer(
                bootstrap_servers=front.bootstrap, request_timeout_ms=5000, **security.options()
            )
            await trio_asyncio.aio_as_trio(producer.start)()
            try:
                await trio_asyncio.aio_as_trio(producer.send_and_wait)(topic, b"before")
                accepted = len(front.authentications)
                front.sever_connections()
                await trio_asyncio.aio_as_trio(producer.send_and_wait)(topic, b"after")
            finally:
                await trio_asyncio.aio_as_trio(producer.stop)()
        got = await consume_all(front.bootstrap, topic, expect=2, timeout=10, security=security)
        assert [r.value for r in got] == [b"before", b"after"]
        assert len(front.authentications) > accepted
        assert all(a == Authentication("SCRAM-SHA-512", "bob", True) for a in front.authentications)
