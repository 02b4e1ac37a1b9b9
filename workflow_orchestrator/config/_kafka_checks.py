"""Checks of ``eventProcessing.kafka`` across fields, and of its TLS files.

Both apply only with ``eventProcessing.source: kafka`` (other sources never read these
settings). ``check_kafka`` runs when the configuration loads: two topics with names Kafka
accepts, a dead-letter topic that is valid and none of them, every bootstrap server written
``host:port``, SASL credentials for a SASL protocol, a client certificate together with its
key, and no credentials or files the protocol would silently not use.
``kafka_startup_problems`` runs when the service starts (``startup_problems``), once
``${secret:NAME}`` references are resolved: every TLS file named is readable, holds what it
should, and loads (an encrypted key with its password, a key that belongs to its
certificate), so a bad file stops startup naming its key instead of failing every connection.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Callable, Mapping

from workflow_orchestrator.config._errors import ConfigProblem
from workflow_orchestrator.config._kafka_settings import KafkaSettings, KafkaTlsSettings
from workflow_orchestrator.config._pem_files import read_pem_file, refuse_passphrase
from workflow_orchestrator.config._settings import Settings

__all__ = ["check_kafka", "kafka_startup_problems", "valid_topic_name"]

PREFIX = "eventProcessing.kafka"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_TOPIC_RULE = "use 1 to 249 letters, digits, '.', '_' or '-' (not '.' or '..')"

Problem = Callable[[str, str], None]


def valid_topic_name(name: str) -> bool:
    """Whether Kafka accepts ``name`` as a topic: 1-249 of ``[A-Za-z0-9._-]``, not . or .."""
    return bool(_TOPIC.fullmatch(name)) and name not in (".", "..")


def _broker_problem(entry: str) -> str | None:
    """What is wrong with one ``bootstrapServers`` entry (None when it is ``host:port``)."""
    if "://" in entry:
        return (
            f"{entry!r} has a scheme; write host:port (the protocol is {PREFIX}.securityProtocol)"
        )
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"{entry!r} is not [IPv6 address]:port, e.g. [::1]:9092"
        if not rest.startswith(":"):
            return f"{entry!r} has no port; write host:port, e.g. [{address}]:9092"
        port = rest[1:]
    else:
        address, separator, port = entry.rpartition(":")
        if not separator:
            return f"{entry!r} has no port; write host:port, e.g. {entry}:9092"
        if ":" in address:
            return f"{entry!r}: write an IPv6 address in brackets, e.g. [::1]:9092"
        if not _HOST.fullmatch(address):
            return f"{entry!r} is not host:port; the host {address!r} is not a host name or address"
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"the port of {entry!r} is not a number from 1 to 65535"
    return None


def check_kafka(
    settings: Settings,
    sources: Mapping[str, str],
    source_of: Callable[[Mapping[str, str], str], str],
) -> list[ConfigProblem]:
    """Every problem of ``eventProcessing.kafka`` (none unless the source is kafka)."""
    if settings.event_processing.source != "kafka":
        return []
    problems: list[ConfigProblem] = []

    def problem(field: str, message: str) -> None:
        key = f"{PREFIX}.{field}"
        problems.append(ConfigProblem(source=source_of(sources, key), key=key, message=message))

    kafka = settings.event_processing.kafka
    _check_brokers(kafka, problem)
    _check_topics(kafka, problem)
    _check_credentials(kafka, problem)
    return problems


def _check_brokers(kafka: KafkaSettings, problem: Problem) -> None:
    if not kafka.bootstrap_server_list:
        problem("bootstrapServers", "name at least one broker as host:port, e.g. kafka:9092")
    for entry in kafka.bootstrap_server_list:
        reason = _broker_problem(entry)
        if reason:
            problem("bootstrapServers", f"{reason}; separate several brokers with commas")


def _check_topics(kafka: KafkaSettings, problem: Problem) -> None:
    if len(kafka.topics) < 2:
        problem(
            "topics",
            "name two topics: the business topic (consumed; emitted events go there) and the "
            "system topic (lifecycle events), e.g. [business-events, system-events]",
        )
    for i, topic in enumerate(kafka.topics):
        if not valid_topic_name(topic):
            problem(f"topics[{i}]", f"{topic!r} is not a valid Kafka topic name; {_TOPIC_RULE}")
    if not kafka.consumer_group:
        problem(
            "consumerGroup",
            "give the consumer group id the replicas share, e.g. workflow-orchestrator",
        )
        return
    dead_letter = kafka.dead_letter_topic_name
    if not valid_topic_name(dead_letter):
        if kafka.dead_letter_topic:
            problem(
                "deadLetterTopic",
                f"{dead_letter!r} is not a valid Kafka topic name; {_TOPIC_RULE}",
            )
        else:
            problem(
                "consumerGroup",
                f"the default dead-letter topic {dead_letter!r} made from it is not a valid "
                f"Kafka topic name; set {PREFIX}.deadLetterTopic, or use a group id of "
                "letters, digits, '.', '_' or '-'",
            )
    elif dead_letter in kafka.topics:
        problem(
            "deadLetterTopic",
            f"the dead-letter topic {dead_letter!r} is also in {PREFIX}.topics, so dead-lettered "
            "records would be consumed again; choose another name",
        )


def _check_credentials(kafka: KafkaSettings, problem: Problem) -> None:
    protocol = kafka.security_protocol
    sasl, tls = kafka.sasl, kafka.tls
    if kafka.uses_sasl:
        if not sasl.username:
            problem(
                "sasl.username",
                f"securityProtocol {protocol} needs a SASL user name; set it, or use "
                "securityProtocol PLAINTEXT or SSL",
            )
        if not sasl.password:
            problem(
                "sasl.password",
                f"securityProtocol {protocol} needs a SASL password; set it (e.g. "
                "${secret:kafka-password}), or use securityProtocol PLAINTEXT or SSL",
            )
    elif sasl.username or sasl.password:
        problem(
            "securityProtocol",
            f"sasl credentials are set but securityProtocol is {protocol}, which never sends "
            "them; use SASL_SSL (or SASL_PLAINTEXT), or remove the sasl settings",
        )
    if bool(tls.certificate) != bool(tls.private_key):
        present, missing = (
            ("certificate", "privateKey") if tls.certificate else ("privateKey", "certificate")
        )
        problem(
            f"tls.{missing}",
            f"tls.{present} is set without tls.{missing}; mutual TLS needs the client's PEM "
            "certificate and its private key (or set neither)",
        )
    files = [name for name, value in _tls_files(tls) if value]
    if files and not kafka.uses_tls:
        problem(
            "securityProtocol",
            f"tls.{files[0]} is set but securityProtocol is {protocol}, which does not use "
            "TLS; use SSL (or SASL_SSL), or remove the tls files",
        )


def _tls_files(tls: KafkaTlsSettings) -> tuple[tuple[str, str], ...]:
    return (
        ("caCertificate", tls.ca_certificate),
        ("certificate", tls.certificate),
        ("privateKey", tls.private_key),
    )


def kafka_startup_problems(
    settings: Settings, source_of: Callable[[str], str]
) -> list[ConfigProblem]:
    """Problems of the Kafka TLS files (none unless the source is kafka with SSL or
    SASL_SSL): readable PEM files that load, checked with references resolved."""
    kafka = settings.event_processing.kafka
    if settings.event_processing.source != "kafka" or not kafka.uses_tls:
        return []
    problems: list[ConfigProblem] = []

    def problem(field: str, message: str) -> None:
        key = f"{PREFIX}.tls.{field}"
        problems.append(ConfigProblem(source=source_of(key), key=key, message=message))

    tls = kafka.tls
    contents: dict[str, bytes] = {}
    for field, path in _tls_files(tls):
        if not path:
            continue
        data = read_pem_file(path)
        if isinstance(data, str):
            problem(field, f"{data}; give the path of a PEM file")
            continue
        if field == "privateKey" and b"PRIVATE KEY-----" not in data:
            problem(field, f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
        elif field != "privateKey" and b"-----BEGIN CERTIFICATE-----" not in data:
            problem(field, f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        else:
            contents[field] = data
    if problems:
        return problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_certificate:
        try:
            context.load_verify_locations(cafile=tls.ca_certificate)
        except (OSError, ValueError) as exc:
            problem("caCertificate", f"{tls.ca_certificate} cannot be loaded: {exc}")
    if tls.certificate and tls.private_key:
        _check_key(tls, b"ENCRYPTED" in contents["privateKey"], context, problem)
    return problems


def _check_key(
    tls: KafkaTlsSettings, encrypted: bool, context: ssl.SSLContext, problem: Problem
) -> None:
    if encrypted and not tls.private_key_password:
        problem(
            "privateKeyPassword",
            f"the private key in {tls.private_key} is encrypted; give its password (e.g. "
            "${secret:kafka-key-password})",
        )
        return
    password = tls.private_key_password or refuse_passphrase
    unloadable = f"{tls.certificate} and {tls.private_key} cannot be loaded"
    try:
        context.load_cert_chain(tls.certificate, tls.private_key, password=password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problem(
                "privateKey",
                f"the private key in {tls.private_key} does not belong to the certificate in "
                f"{tls.certificate} (tls.certificate)",
            )
        elif encrypted:
            problem(
                "privateKeyPassword",
                f"the private key in {tls.private_key} cannot be decrypted with this password",
            )
        else:
            problem("certificate", f"{unloadable}: {exc}")
    except (OSError, ValueError) as exc:
        problem("certificate", f"{unloadable}: {exc}")
