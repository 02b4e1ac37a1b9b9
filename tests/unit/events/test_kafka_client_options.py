"""The aiokafka client options from eventProcessing.kafka: only the keys that apply, a TLS
context that really verifies the broker (a handshake against a local TLS server), and a broker
description without the password."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives import serialization

from tests.support.certificates import CertificateAuthority, PemFiles
from workflow_orchestrator.adapters.kafka import client_options, describe_brokers, ssl_context
from workflow_orchestrator.config import (
    ConfigError,
    KafkaSaslSettings,
    KafkaSettings,
    KafkaTlsSettings,
)

SASL = KafkaSaslSettings(mechanism="SCRAM-SHA-512", username="wf", password="hunter2")


def test_plaintext_options() -> None:
    """PLAINTEXT: the brokers as a list, the client id and the protocol, nothing else."""
    settings = KafkaSettings(bootstrap_servers=" k1:9092, k2:9093 ,", client_id="replica-a")
    assert client_options(settings) == {
        "bootstrap_servers": ["k1:9092", "k2:9093"],
        "client_id": "replica-a",
        "security_protocol": "PLAINTEXT",
    }
    assert "client_id" not in client_options(KafkaSettings(client_id=""))


def test_sasl_plaintext_options() -> None:
    """SASL_PLAINTEXT adds the mechanism and credentials, and no TLS context."""
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl=SASL)
    assert client_options(settings) == {
        "bootstrap_servers": ["localhost:9092"],
        "client_id": "workflow-orchestrator",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "wf",
        "sasl_plain_password": "hunter2",
    }


def test_ssl_options_have_a_context_and_no_sasl(tmp_path: Path) -> None:
    """SSL adds a verifying TLS 1.2+ context; SASL settings are left out."""
    authority = CertificateAuthority.create(tmp_path)
    settings = KafkaSettings(
        security_protocol="SSL",
        sasl=KafkaSaslSettings(username="ignored"),
        tls=KafkaTlsSettings(ca_certificate=str(authority.certificate_path)),
    )
    options = client_options(settings)
    assert set(options) == {"bootstrap_servers", "client_id", "security_protocol", "ssl_context"}
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "test test CA"),),)


def test_sasl_ssl_options_have_both(tmp_path: Path) -> None:
    """SASL_SSL has the credentials and the context; hostname checking can be switched off
    while the chain is still verified."""
    authority = CertificateAuthority.create(tmp_path)
    tls = KafkaTlsSettings(ca_certificate=str(authority.certificate_path), check_hostname=False)
    options = client_options(KafkaSettings(security_protocol="SASL_SSL", sasl=SASL, tls=tls))
    assert options["sasl_plain_password"] == "hunter2"
    assert options["ssl_context"].check_hostname is False
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_the_options_build_every_aiokafka_client() -> None:
    """The three aiokafka clients accept the options as keyword arguments."""
    options = client_options(KafkaSettings(security_protocol="SASL_SSL", sasl=SASL))

    async def build() -> list[Any]:
        consumer = AIOKafkaConsumer("business-events", group_id="g", **options)
        producer = AIOKafkaProducer(**options)
        admin = AIOKafkaAdminClient(**options)
        clients = [consumer._client, producer.client, admin._client]
        await consumer.stop()
        await producer.stop()
        await admin.close()
        return clients

    for client in asyncio.run(build()):
        assert client._bootstrap_servers == ["localhost:9092"]
        assert (client._security_protocol, client._sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
        assert client._ssl_context is options["ssl_context"]


# -- the TLS context against a real handshake -------------------------------------------------


def server_context(files: PemFiles, client_ca: Path | None = None) -> ssl.SSLContext:
    """A broker-like TLS server context; with ``client_ca`` it requires client certificates."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(files.certificate), str(files.private_key))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, *, server_hostname: str = "localhost"
) -> Any:
    """Connect ``client`` to a local TLS server and exchange a message; the client certificate
    the server saw (None without one). Raises `trio.BrokenResourceError` when the client
    refuses the server."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    seen: list[Any] = []
    refused: trio.BrokenResourceError | None = None

    async def serve() -> None:
        stream = trio.SSLStream(await listener.accept(), server, server_side=True)
        try:
            await stream.do_handshake()
            seen.append(stream.getpeercert())
            await stream.send_all(b"ok")
        except trio.BrokenResourceError:
            pass  # the client refused this server: the client side reports it
        finally:
            await trio.aclose_forcefully(stream)

    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        stream = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), client, server_hostname=server_hostname
        )
        try:
            await stream.do_handshake()
            assert await stream.receive_some() == b"ok"
        except trio.BrokenResourceError as error:
            refused = error
            nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(stream)
    if refused is not None:
        raise refused
    (peer,) = seen
    return peer


async def test_the_context_trusts_its_ca_and_checks_the_name(tmp_path: Path) -> None:
    """The context connects to a broker of its CA, refuses another CA's, and refuses a wrong
    host name unless checkHostname is off."""
    authority = CertificateAuthority.create(tmp_path)
    server = server_context(authority.issue_server())
    tls = KafkaTlsSettings(ca_certificate=str(authority.certificate_path))
    assert await handshake(server, ssl_context(tls)) is None
    with pytest.raises(trio.BrokenResourceError) as refused:
        await handshake(server, ssl_context(tls), server_hostname="kafka.example")
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(refused.value.__cause__)
    unchecked = KafkaTlsSettings(
        ca_certificate=str(authority.certificate_path), check_hostname=False
    )
    assert await handshake(server, ssl_context(unchecked), server_hostname="kafka.example") is None
    stranger = CertificateAuthority.create(tmp_path, name="stranger")
    other = server_context(stranger.issue_server())
    with pytest.raises(trio.BrokenResourceError) as untrusted:
        await handshake(other, ssl_context(unchecked))
    assert "unable to get local issuer certificate" in str(untrusted.value.__cause__)


async def test_mutual_tls_presents_the_client_certificate(tmp_path: Path) -> None:
    """With certificate and privateKey (plain or encrypted), a broker requiring client
    certificates sees the configured one."""
    authority = CertificateAuthority.create(tmp_path)
    server = server_context(authority.issue_server(), client_ca=authority.certificate_path)
    client = authority.issue_client("orchestrator")
    tls = KafkaTlsSettings(
        ca_certificate=str(authority.certificate_path),
        certificate=str(client.certificate),
        private_key=str(client.private_key),
    )
    peer = await handshake(server, ssl_context(tls))
    assert peer["subject"] == ((("commonName", "orchestrator"),),)
    encrypted = tmp_path / "encrypted-key.pem"
    key = serialization.load_pem_private_key(client.private_key.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"sesame"),
        )
    )
    tls = KafkaTlsSettings(
        ca_certificate=str(authority.certificate_path),
        certificate=str(client.certificate),
        private_key=str(encrypted),
        private_key_password="sesame",
    )
    peer = await handshake(server, ssl_context(tls))
    assert peer["subject"] == ((("commonName", "orchestrator"),),)
    # Without the password the key is refused (never a passphrase prompt).
    with pytest.raises(ConfigError) as refused:
        ssl_context(
            KafkaTlsSettings(certificate=str(client.certificate), private_key=str(encrypted))
        )
    assert str(refused.value.problems[0]) == (
        f"eventProcessing.kafka.tls.certificate: {client.certificate} and {encrypted} cannot be "
        "loaded: the private key is encrypted and tls.privateKeyPassword is empty"
    )


def test_a_file_that_cannot_be_loaded_names_its_key(tmp_path: Path) -> None:
    """A CA file that does not exist is a ConfigError naming tls.caCertificate."""
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as refused:
        ssl_context(KafkaTlsSettings(ca_certificate=str(missing)))
    (problem,) = refused.value.problems
    assert problem.key == "eventProcessing.kafka.tls.caCertificate"
    assert problem.message.startswith(f"{missing} cannot be loaded: [Errno 2] No such file")


# -- describe_brokers ----------------------------------------------------------------------------


def test_describe_brokers() -> None:
    """The log line names brokers, protocol, mechanism, user and files; never the password."""
    assert describe_brokers(KafkaSettings(bootstrap_servers="k1:9092,k2:9092")) == (
        "k1:9092, k2:9092 (PLAINTEXT)"
    )
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl=SASL,
        tls=KafkaTlsSettings(
            ca_certificate="/etc/kafka/ca.pem",
            certificate="/etc/kafka/client.pem",
            private_key="/etc/kafka/client-key.pem",
            private_key_password="sesame",
            check_hostname=False,
        ),
    )
    described = describe_brokers(settings)
    assert described == (
        "localhost:9092 (SASL_SSL; SCRAM-SHA-512 as 'wf'; CA /etc/kafka/ca.pem; client "
        "certificate /etc/kafka/client.pem; host names not checked)"
    )
    assert "hunter2" not in described and "sesame" not in described
    assert describe_brokers(KafkaSettings(security_protocol="SSL")) == (
        "localhost:9092 (SSL; the system's CAs)"
    )
