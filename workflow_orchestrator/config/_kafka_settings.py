"""Typed settings of ``eventProcessing.kafka``: the brokers, topics, consumer and security.

Every class mirrors one mapping of ``application.yaml`` (camelCase keys, as in ``_settings``).
The values are checked when the configuration loads (``_kafka_checks.check_kafka``, only with
``eventProcessing.source: kafka``) and the TLS files when the service starts
(``_kafka_checks.kafka_startup_problems``), so a source built from loaded settings may rely
on: at least two valid topic names, a valid dead-letter topic that is none of them, brokers
written ``host:port``, SASL credentials when the protocol is SASL, a client certificate
together with its key.
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.config._meta import setting as _meta

__all__ = [
    "KAFKA_SASL_MECHANISMS",
    "KAFKA_SECURITY_PROTOCOLS",
    "KafkaSaslSettings",
    "KafkaSettings",
    "KafkaTlsSettings",
]

#: ``eventProcessing.kafka.securityProtocol``: Kafka's names for plain, TLS and SASL transports.
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: ``eventProcessing.kafka.sasl.mechanism``: the SASL mechanisms the client speaks.
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: The suffix of the dead-letter topic's default name (``<consumerGroup>.dead-letter``).
DEAD_LETTER_SUFFIX = ".dead-letter"


@attrs.frozen(kw_only=True)
class KafkaSaslSettings:
    """SASL authentication, used with ``securityProtocol`` SASL_PLAINTEXT or SASL_SSL."""

    mechanism: str = attrs.field(default="PLAIN", metadata=_meta(choices=KAFKA_SASL_MECHANISMS))
    username: str = attrs.field(default="", metadata=_meta(help="the SASL user name"))
    # Never in a repr either (a settings object in a log line or a traceback).
    password: str = attrs.field(
        default="",
        repr=False,
        metadata=_meta(secret=True, help="the SASL password, e.g. ${secret:kafka-password}"),
    )


@attrs.frozen(kw_only=True)
class KafkaTlsSettings:
    """TLS to the brokers, used with ``securityProtocol`` SSL or SASL_SSL: the CAs to trust
    and, for mutual TLS, a client certificate with its key (PEM files)."""

    ca_certificate: str = attrs.field(
        default="",
        metadata=_meta(help="a PEM file of the CAs to trust; empty: the system's CAs"),
    )
    certificate: str = attrs.field(
        default="", metadata=_meta(help="the client's PEM certificate chain (mutual TLS)")
    )
    private_key: str = attrs.field(
        default="", metadata=_meta(help="the client's PEM private key (mutual TLS)")
    )
    private_key_password: str = attrs.field(
        default="",
        repr=False,
        metadata=_meta(secret=True, help="the password of an encrypted private key"),
    )
    check_hostname: bool = attrs.field(default=True, metadata=_meta(help="true or false"))


@attrs.frozen(kw_only=True)
class KafkaSettings:
    """The Kafka event source and sink (``eventProcessing.source: kafka``).

    ``topics[0]`` is the business topic (consumed; emitted events are produced to it),
    ``topics[1]`` the system topic (lifecycle events). Records that are not valid CloudEvents
    go to the dead-letter topic (``deadLetterTopic``, else ``<consumerGroup>.dead-letter``).
    """

    bootstrap_servers: str = attrs.field(
        default="localhost:9092",
        metadata=_meta(help="a comma-separated list of host:port, e.g. kafka-1:9092,kafka-2:9092"),
    )
    consumer_group: str = attrs.field(
        default="workflow-orchestrator",
        metadata=_meta(help="the consumer group id the replicas share"),
    )
    topics: tuple[str, ...] = ("business-events", "system-events")
    dead_letter_topic: str = attrs.field(
        default="",
        metadata=_meta(help="a topic name; empty: <consumerGroup>.dead-letter"),
    )
    client_id: str = attrs.field(
        default="workflow-orchestrator",
        metadata=_meta(help="the client id the brokers log and quota by"),
    )
    create_topics: bool = attrs.field(default=True, metadata=_meta(help="true or false"))
    topic_partitions: int = attrs.field(
        default=6,
        metadata=_meta(minimum=1, maximum=100_000, help="a number of partitions >= 1"),
    )
    replication_factor: int = attrs.field(
        default=0,
        metadata=_meta(
            minimum=0, maximum=32_767, help="a number of replicas (0: the broker's default)"
        ),
    )
    max_batch: int = attrs.field(
        default=500,
        metadata=_meta(minimum=1, maximum=10_000, help="a number of records from 1 to 10000"),
    )
    # aiokafka's default; a Kafka broker accepts 6s..30min (group.min/max.session.timeout.ms).
    session_timeout: float = attrs.field(
        default=10.0,
        metadata=_meta(
            kind="duration", minimum=6.0, maximum=300.0, help="a duration from 6s to 300s"
        ),
    )
    idempotent_producer: bool = attrs.field(default=True, metadata=_meta(help="true or false"))
    security_protocol: str = attrs.field(
        default="PLAINTEXT", metadata=_meta(choices=KAFKA_SECURITY_PROTOCOLS)
    )
    sasl: KafkaSaslSettings = attrs.field(factory=KafkaSaslSettings)
    tls: KafkaTlsSettings = attrs.field(factory=KafkaTlsSettings)

    @property
    def bootstrap_server_list(self) -> tuple[str, ...]:
        """The entries of ``bootstrapServers``, stripped, empty ones left out."""
        return tuple(entry.strip() for entry in self.bootstrap_servers.split(",") if entry.strip())

    @property
    def dead_letter_topic_name(self) -> str:
        """``deadLetterTopic``, or ``<consumerGroup>.dead-letter`` when it is empty."""
        return self.dead_letter_topic or f"{self.consumer_group}{DEAD_LETTER_SUFFIX}"

    @property
    def uses_sasl(self) -> bool:
        """Whether the protocol authenticates with SASL (SASL_PLAINTEXT, SASL_SSL)."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        """Whether the protocol encrypts with TLS (SSL, SASL_SSL)."""
        return self.security_protocol in ("SSL", "SASL_SSL")
