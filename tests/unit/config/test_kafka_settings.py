"""eventProcessing.kafka: the keys load, every cross-field rule names its key and fix, the
TLS files are checked at startup, and `config show` never shows a Kafka secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.certificates import CertificateAuthority, PemFiles
from workflow_orchestrator.config import (
    MASK,
    ConfigError,
    KafkaSettings,
    LoadedConfig,
    effective_rows,
    effective_tree,
    load_config,
    startup_problems,
    valid_topic_name,
)
from workflow_orchestrator.security import SecretStore, resolve_config_secrets

# The block of the brief, verbatim (the guide's keys plus ours).
FULL_BLOCK = """\
eventProcessing:
  source: kafka
  kafka:
    bootstrapServers: kafka:9092        # comma-separated host:port list (KAFKA_BOOTSTRAP_SERVERS)
    consumerGroup: workflow-orchestrator
    topics: [business-events, system-events]  # first: consumed + emitted events; second: lifecycle events
    deadLetterTopic: ""                 # empty: <consumerGroup>.dead-letter
    clientId: workflow-orchestrator
    createTopics: true                  # create missing topics (and the dead-letter topic) at start
    topicPartitions: 6                  # partitions of topics it creates (>= 1)
    replicationFactor: 0                # of topics it creates; 0 = the broker's default
    maxBatch: 500                       # records per poll, 1..10000
    sessionTimeout: 10s                 # consumer group session timeout (6s..300s)
    idempotentProducer: true
    securityProtocol: PLAINTEXT         # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl:
      mechanism: PLAIN                  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
      username: ""
      password: ""                      # secret (never shown by `config show`); ${secret:kafka-password}
    tls:
      caCertificate: ""                 # PEM file of CAs to trust; empty: the system's
      certificate: ""                   # client certificate (mutual TLS)
      privateKey: ""
      privateKeyPassword: ""            # secret
      checkHostname: true
"""
KAFKA = "eventProcessing.kafka"


def load(tmp_path: Path, kafka: str, *, source: str = "kafka", **environ: str) -> LoadedConfig:
    """Load a file whose ``eventProcessing.kafka`` mapping is the YAML lines ``kafka``."""
    path = tmp_path / "application.yaml"
    body = "".join(f"    {line}\n" for line in kafka.splitlines())
    path.write_text(f"eventProcessing:\n  source: {source}\n  kafka:\n{body}")
    return load_config(config_path=path, environ=environ, cwd=tmp_path)


def refusals(tmp_path: Path, kafka: str, **environ: str) -> list[tuple[str, str]]:
    """The (key, message) of every problem loading ``kafka`` finds."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, kafka, **environ)
    return [(p.key, p.message) for p in caught.value.problems]


def test_the_full_block_loads_verbatim(tmp_path: Path) -> None:
    """Every key of the block loads with its value; the dead-letter topic defaults from the group."""
    path = tmp_path / "application.yaml"
    path.write_text(FULL_BLOCK)
    loaded = load_config(config_path=path, environ={}, cwd=tmp_path)
    kafka = loaded.settings.event_processing.kafka
    assert loaded.settings.event_processing.source == "kafka"
    assert kafka == KafkaSettings(bootstrap_servers="kafka:9092")
    assert kafka.bootstrap_server_list == ("kafka:9092",)
    assert kafka.topics == ("business-events", "system-events")
    assert kafka.dead_letter_topic_name == "workflow-orchestrator.dead-letter"
    assert (kafka.max_batch, kafka.session_timeout, kafka.topic_partitions) == (500, 10.0, 6)
    assert (kafka.uses_sasl, kafka.uses_tls) == (False, False)
    assert loaded.source_of(f"{KAFKA}.sasl.mechanism") == str(path)


def test_defaults_hold_for_the_kafka_source(tmp_path: Path) -> None:
    """`source: kafka` alone loads: every default passes the checks."""
    loaded = load(tmp_path, "{}")
    assert loaded.settings.event_processing.kafka == KafkaSettings()
    assert loaded.settings.event_processing.kafka.bootstrap_server_list == ("localhost:9092",)


def test_every_value_is_read(tmp_path: Path) -> None:
    """Non-default values of every key arrive in the settings (choices in any case)."""
    kafka = load(
        tmp_path,
        """\
bootstrapServers: " k1:9092 , [::1]:9093,10.0.0.7:19092,"
consumerGroup: orchestrators
topics: [orders, lifecycle, extra]
deadLetterTopic: orders.rejected
clientId: replica-a
createTopics: false
topicPartitions: 12
replicationFactor: 3
maxBatch: 10000
sessionTimeout: 6s
idempotentProducer: false
securityProtocol: sasl_ssl
sasl: {mechanism: scram-sha-512, username: wf, password: pw}
tls: {caCertificate: /ca.pem, certificate: /c.pem, privateKey: /k.pem,
      privateKeyPassword: kpw, checkHostname: false}""",
    ).settings.event_processing.kafka
    assert kafka.bootstrap_server_list == ("k1:9092", "[::1]:9093", "10.0.0.7:19092")
    assert (kafka.consumer_group, kafka.client_id) == ("orchestrators", "replica-a")
    assert kafka.topics == ("orders", "lifecycle", "extra")
    assert kafka.dead_letter_topic_name == "orders.rejected"
    assert (kafka.create_topics, kafka.idempotent_producer) == (False, False)
    assert (kafka.topic_partitions, kafka.replication_factor) == (12, 3)
    assert (kafka.max_batch, kafka.session_timeout) == (10000, 6.0)
    assert (kafka.security_protocol, kafka.uses_sasl, kafka.uses_tls) == ("SASL_SSL", True, True)
    assert (kafka.sasl.mechanism, kafka.sasl.username, kafka.sasl.password) == (
        "SCRAM-SHA-512",
        "wf",
        "pw",
    )
    tls = kafka.tls
    assert (tls.ca_certificate, tls.certificate, tls.private_key) == ("/ca.pem", "/c.pem", "/k.pem")
    assert (tls.private_key_password, tls.check_hostname) == ("kpw", False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("maxBatch: 0", "expected a number of records from 1 to 10000, got 0 (out of range)"),
        (
            "maxBatch: 10001",
            "expected a number of records from 1 to 10000, got 10001 (out of range)",
        ),
        ("sessionTimeout: 5s", "expected a duration from 6s to 300s, got '5s' (out of range)"),
        ("sessionTimeout: 301s", "expected a duration from 6s to 300s, got '301s' (out of range)"),
        ("topicPartitions: 0", "expected a number of partitions >= 1, got 0 (out of range)"),
        (
            "replicationFactor: -1",
            "expected a number of replicas (0: the broker's default), got -1 (out of range)",
        ),
        (
            "securityProtocol: TLS",
            "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'",
        ),
        (
            "sasl: {mechanism: SCRAM-SHA-265}",
            "expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got 'SCRAM-SHA-265'; did you "
            "mean 'SCRAM-SHA-256'?",
        ),
    ],
)
def test_values_are_bounded(tmp_path: Path, line: str, message: str) -> None:
    """Counts, durations and choices out of their range say what is expected."""
    ((key, found),) = refusals(tmp_path, line)
    assert key.startswith(KAFKA)
    assert found == message


def test_the_environment_variable_sets_the_brokers(tmp_path: Path) -> None:
    """KAFKA_BOOTSTRAP_SERVERS wins over the file, and a bad entry in it is blamed on it."""
    loaded = load(
        tmp_path, "bootstrapServers: file:9092", KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2:9093"
    )
    assert loaded.settings.event_processing.kafka.bootstrap_server_list == ("k1:9092", "k2:9093")
    assert loaded.source_of(f"{KAFKA}.bootstrapServers") == "env KAFKA_BOOTSTRAP_SERVERS"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "{}", KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2")
    assert [str(p) for p in caught.value.problems] == [
        f"env KAFKA_BOOTSTRAP_SERVERS: {KAFKA}.bootstrapServers: 'k2' has no port; write "
        "host:port, e.g. k2:9092; separate several brokers with commas"
    ]


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ("kafka", "'kafka' has no port; write host:port, e.g. kafka:9092"),
        ("kafka:0", "the port of 'kafka:0' is not a number from 1 to 65535"),
        ("kafka:65536", "the port of 'kafka:65536' is not a number from 1 to 65535"),
        ("kafka:http", "the port of 'kafka:http' is not a number from 1 to 65535"),
        ("kafka:", "the port of 'kafka:' is not a number from 1 to 65535"),
        (":9092", "':9092' is not host:port; the host '' is not a host name or address"),
        (
            "bad host:9092",
            "'bad host:9092' is not host:port; the host 'bad host' is not a host name or address",
        ),
        (
            "PLAINTEXT://kafka:9092",
            f"'PLAINTEXT://kafka:9092' has a scheme; write host:port (the protocol is "
            f"{KAFKA}.securityProtocol)",
        ),
        ("::1:9092", "'::1:9092': write an IPv6 address in brackets, e.g. [::1]:9092"),
        ("[::1]", "'[::1]' has no port; write host:port, e.g. [::1]:9092"),
        ("[::1]:x", "the port of '[::1]:x' is not a number from 1 to 65535"),
        ("[::1", "'[::1' has no port; write host:port, e.g. [::1]:9092"),
        ("[nope]:9092", "'[nope]:9092' is not [IPv6 address]:port, e.g. [::1]:9092"),
    ],
)
def test_every_broker_is_host_and_port(tmp_path: Path, servers: str, message: str) -> None:
    """Each comma-separated entry is host:port with a port from 1 to 65535."""
    assert refusals(tmp_path, f"bootstrapServers: '{servers}'") == [
        (f"{KAFKA}.bootstrapServers", f"{message}; separate several brokers with commas")
    ]


def test_no_broker_at_all(tmp_path: Path) -> None:
    """An empty list of brokers is refused, with an example."""
    assert refusals(tmp_path, "bootstrapServers: ' , '") == [
        (f"{KAFKA}.bootstrapServers", "name at least one broker as host:port, e.g. kafka:9092")
    ]


def test_two_topics_are_needed(tmp_path: Path) -> None:
    """The business and the system topic are both required, as the RabbitMQ exchanges are."""
    assert refusals(tmp_path, "topics: [business-events]") == [
        (
            f"{KAFKA}.topics",
            "name two topics: the business topic (consumed; emitted events go there) and the "
            "system topic (lifecycle events), e.g. [business-events, system-events]",
        )
    ]


@pytest.mark.parametrize("name", ["with space", ".", "..", "x" * 250, "ünïcode", "a/b"])
def test_topic_names_must_be_valid_for_kafka(tmp_path: Path, name: str) -> None:
    """A topic Kafka would refuse is refused at load, naming the rule."""
    assert not valid_topic_name(name)
    assert refusals(tmp_path, f"topics: [ok, '{name}']") == [
        (
            f"{KAFKA}.topics[1]",
            f"{name!r} is not a valid Kafka topic name; use 1 to 249 letters, digits, '.', '_' "
            "or '-' (not '.' or '..')",
        )
    ]


def test_valid_topic_names() -> None:
    """Letters, digits, dot, underscore and dash, up to 249 characters."""
    assert all(valid_topic_name(n) for n in ("a", "A.b_c-9", "...", "x" * 249, "_"))


def test_dead_letter_topic_rules(tmp_path: Path) -> None:
    """The dead-letter topic is valid and none of the consumed topics; its default comes from
    the consumer group, which is blamed when that default is invalid."""
    assert refusals(tmp_path, "deadLetterTopic: business-events") == [
        (
            f"{KAFKA}.deadLetterTopic",
            f"the dead-letter topic 'business-events' is also in {KAFKA}.topics, so "
            "dead-lettered records would be consumed again; choose another name",
        )
    ]
    assert refusals(tmp_path, "deadLetterTopic: 'dead letters'") == [
        (
            f"{KAFKA}.deadLetterTopic",
            "'dead letters' is not a valid Kafka topic name; use 1 to 249 letters, digits, "
            "'.', '_' or '-' (not '.' or '..')",
        )
    ]
    assert refusals(tmp_path, "consumerGroup: 'my group'") == [
        (
            f"{KAFKA}.consumerGroup",
            f"the default dead-letter topic 'my group.dead-letter' made from it is not a valid "
            f"Kafka topic name; set {KAFKA}.deadLetterTopic, or use a group id of letters, "
            "digits, '.', '_' or '-'",
        )
    ]
    loaded = load(tmp_path, "consumerGroup: 'my group'\ndeadLetterTopic: dlq")
    assert loaded.settings.event_processing.kafka.dead_letter_topic_name == "dlq"
    assert refusals(tmp_path, "consumerGroup: ''") == [
        (
            f"{KAFKA}.consumerGroup",
            "give the consumer group id the replicas share, e.g. workflow-orchestrator",
        )
    ]


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_needs_a_user_and_a_password(tmp_path: Path, protocol: str) -> None:
    """A SASL protocol without credentials names both missing keys."""
    assert refusals(tmp_path, f"securityProtocol: {protocol}") == [
        (
            f"{KAFKA}.sasl.username",
            f"securityProtocol {protocol} needs a SASL user name; set it, or use "
            "securityProtocol PLAINTEXT or SSL",
        ),
        (
            f"{KAFKA}.sasl.password",
            f"securityProtocol {protocol} needs a SASL password; set it (e.g. "
            "${secret:kafka-password}), or use securityProtocol PLAINTEXT or SSL",
        ),
    ]
    loaded = load(
        tmp_path,
        f"securityProtocol: {protocol}\nsasl: {{username: wf, password: '${{secret:kafka-password}}'}}",
    )
    assert loaded.settings.event_processing.kafka.sasl.password == "${secret:kafka-password}"


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_credentials_the_protocol_would_not_send(tmp_path: Path, protocol: str) -> None:
    """SASL credentials with a protocol that never sends them are refused, not ignored."""
    assert refusals(tmp_path, f"securityProtocol: {protocol}\nsasl: {{username: wf}}") == [
        (
            f"{KAFKA}.securityProtocol",
            f"sasl credentials are set but securityProtocol is {protocol}, which never sends "
            "them; use SASL_SSL (or SASL_PLAINTEXT), or remove the sasl settings",
        )
    ]


def test_client_certificate_and_key_come_together(tmp_path: Path) -> None:
    """Mutual TLS needs both files; the missing one is named."""
    assert refusals(tmp_path, "securityProtocol: SSL\ntls: {certificate: /c.pem}") == [
        (
            f"{KAFKA}.tls.privateKey",
            "tls.certificate is set without tls.privateKey; mutual TLS needs the client's PEM "
            "certificate and its private key (or set neither)",
        )
    ]
    assert refusals(tmp_path, "securityProtocol: SSL\ntls: {privateKey: /k.pem}") == [
        (
            f"{KAFKA}.tls.certificate",
            "tls.privateKey is set without tls.certificate; mutual TLS needs the client's PEM "
            "certificate and its private key (or set neither)",
        )
    ]


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_without_tls(tmp_path: Path, protocol: str) -> None:
    """TLS files with a protocol that does not encrypt are refused: the operator meant TLS."""
    sasl = "\nsasl: {username: u, password: p}" if protocol.startswith("SASL") else ""
    assert refusals(
        tmp_path, f"securityProtocol: {protocol}\ntls: {{caCertificate: /ca.pem}}{sasl}"
    ) == [
        (
            f"{KAFKA}.securityProtocol",
            f"tls.caCertificate is set but securityProtocol is {protocol}, which does not use "
            "TLS; use SSL (or SASL_SSL), or remove the tls files",
        )
    ]


def test_other_sources_never_check_the_kafka_settings(tmp_path: Path) -> None:
    """With the database source, Kafka settings that could not work still load."""
    loaded = load(
        tmp_path,
        "bootstrapServers: nope\ntopics: [one]\nsecurityProtocol: SASL_SSL",
        source="database",
    )
    assert loaded.settings.event_processing.kafka.topics == ("one",)
    assert startup_problems(loaded.settings, loaded.source_of) == []


def test_config_show_masks_the_kafka_secrets(tmp_path: Path) -> None:
    """The SASL password and the key's password are masked; the other keys are shown."""
    loaded = load(
        tmp_path,
        "securityProtocol: SASL_SSL\nsasl: {username: wf, password: hunter2}\n"
        "tls: {certificate: /c.pem, privateKey: /k.pem, privateKeyPassword: sesame}",
    )
    rows = {key: value for key, value, _ in effective_rows(loaded)}
    assert "hunter2" not in repr(rows) and "sesame" not in repr(rows)
    assert rows[f"{KAFKA}.sasl.password"] == f'"{MASK}"'
    assert rows[f"{KAFKA}.tls.privateKeyPassword"] == f'"{MASK}"'
    assert rows[f"{KAFKA}.sasl.username"] == '"wf"'
    assert rows[f"{KAFKA}.sessionTimeout"] == "10.0"
    tree = effective_tree(loaded)["eventProcessing"]["kafka"]
    assert tree["sasl"] == {"mechanism": "PLAIN", "username": "wf", "password": MASK}
    assert tree["tls"]["privateKeyPassword"] == MASK
    assert tree["tls"]["certificate"] == "/c.pem"
    assert "hunter2" not in repr(loaded.settings) and "sesame" not in repr(loaded.settings)


async def test_the_passwords_come_from_the_secret_providers(tmp_path: Path) -> None:
    """`${secret:kafka-password}` resolves at startup; the loaded configuration keeps the
    reference, and the resolved value is never shown."""
    loaded = load(
        tmp_path,
        "securityProtocol: SASL_PLAINTEXT\n"
        "sasl: {username: wf, password: '${secret:kafka-password}'}",
    )
    store = SecretStore.from_settings(
        loaded.settings.security.secrets, environ={"WORKFLOW_SECRET_KAFKA_PASSWORD": "kafka-s3cret"}
    )
    resolved = await resolve_config_secrets(loaded, store)
    assert resolved.settings.event_processing.kafka.sasl.password == "kafka-s3cret"
    assert loaded.settings.event_processing.kafka.sasl.password == "${secret:kafka-password}"
    assert "kafka-s3cret" not in repr(effective_rows(resolved))
    assert startup_problems(resolved.settings, resolved.source_of) == []


# -- startup: the TLS files ------------------------------------------------------------------


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    """A CA whose files live in the test's folder."""
    return CertificateAuthority.create(tmp_path)


def tls_problems(tmp_path: Path, tls: str) -> list[tuple[str, str]]:
    """(key, message) of what `startup_problems` finds for SSL with the ``tls`` mapping."""
    loaded = load(tmp_path, f"securityProtocol: SSL\ntls: {tls}")
    return [(p.key, p.message) for p in startup_problems(loaded.settings, loaded.source_of)]


def encrypted_copy(files: PemFiles, password: bytes) -> Path:
    """The private key of ``files`` encrypted with ``password``, as a PKCS#8 PEM file."""
    key = serialization.load_pem_private_key(files.private_key.read_bytes(), password=None)
    path = files.private_key.with_suffix(".encrypted.pem")
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return path


def test_usable_tls_files_pass(tmp_path: Path, authority: CertificateAuthority) -> None:
    """A CA file, a client certificate and its key (plain or encrypted with its password)."""
    client = authority.issue_client()
    ca = authority.certificate_path
    assert tls_problems(tmp_path, f"{{caCertificate: {ca}}}") == []
    assert (
        tls_problems(
            tmp_path,
            f"{{caCertificate: {ca}, certificate: {client.certificate}, "
            f"privateKey: {client.private_key}}}",
        )
        == []
    )
    encrypted = encrypted_copy(client, b"sesame")
    assert (
        tls_problems(
            tmp_path,
            f"{{certificate: {client.certificate}, privateKey: {encrypted}, "
            "privateKeyPassword: sesame}",
        )
        == []
    )


def test_missing_and_unreadable_files(tmp_path: Path, authority: CertificateAuthority) -> None:
    """A file that does not exist, a folder, and a file of the wrong kind are named."""
    client = authority.issue_client()
    missing = tmp_path / "nowhere.pem"
    assert tls_problems(
        tmp_path,
        f"{{caCertificate: {missing}, certificate: {tmp_path}, privateKey: {client.certificate}}}",
    ) == [
        (
            f"{KAFKA}.tls.caCertificate",
            f"the file {missing} does not exist; give the path of a PEM file",
        ),
        (
            f"{KAFKA}.tls.certificate",
            f"{tmp_path} is a folder, not a file; give the path of a PEM file",
        ),
        (
            f"{KAFKA}.tls.privateKey",
            f"{client.certificate} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
        ),
    ]
    assert tls_problems(tmp_path, f"{{caCertificate: {client.private_key}}}") == [
        (
            f"{KAFKA}.tls.caCertificate",
            f"{client.private_key} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        )
    ]


def test_a_key_of_another_certificate(tmp_path: Path, authority: CertificateAuthority) -> None:
    """A private key that does not belong to the certificate is named."""
    client, other = authority.issue_client(), authority.issue_client("other")
    assert tls_problems(
        tmp_path, f"{{certificate: {client.certificate}, privateKey: {other.private_key}}}"
    ) == [
        (
            f"{KAFKA}.tls.privateKey",
            f"the private key in {other.private_key} does not belong to the certificate in "
            f"{client.certificate} (tls.certificate)",
        )
    ]


def test_an_encrypted_key_needs_its_password(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """An encrypted key without a password, or with a wrong one, names privateKeyPassword."""
    client = authority.issue_client()
    encrypted = encrypted_copy(client, b"sesame")
    files = f"certificate: {client.certificate}, privateKey: {encrypted}"
    assert tls_problems(tmp_path, f"{{{files}}}") == [
        (
            f"{KAFKA}.tls.privateKeyPassword",
            f"the private key in {encrypted} is encrypted; give its password (e.g. "
            "${secret:kafka-key-password})",
        )
    ]
    assert tls_problems(tmp_path, f"{{{files}, privateKeyPassword: wrong}}") == [
        (
            f"{KAFKA}.tls.privateKeyPassword",
            f"the private key in {encrypted} cannot be decrypted with this password",
        )
    ]


def test_files_are_checked_only_when_tls_is_used(tmp_path: Path) -> None:
    """With SASL_PLAINTEXT nothing is read (no file is named); the problems come from the file."""
    loaded = load(tmp_path, "securityProtocol: SASL_PLAINTEXT\nsasl: {username: u, password: p}")
    assert startup_problems(loaded.settings, loaded.source_of) == []
    loaded = load(
        tmp_path,
        f"securityProtocol: SASL_SSL\nsasl: {{username: u, password: p}}\n"
        f"tls: {{caCertificate: {tmp_path / 'x.pem'}}}",
    )
    (problem,) = startup_problems(loaded.settings, loaded.source_of)
    assert problem.source == str(tmp_path / "application.yaml")
