"""The keyword arguments every aiokafka client of the service is built with, from
``eventProcessing.kafka``: AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient share
them (brokers, client id, security protocol, SASL, TLS), so the three connect alike.

Invariants of ``client_options``: only keys that apply are present (no SASL keys unless the
protocol is SASL_PLAINTEXT or SASL_SSL, no ``ssl_context`` unless it is SSL or SASL_SSL), so
aiokafka's own defaults hold otherwise. The TLS context verifies the broker's chain always
(``checkHostname: false`` skips only the name check), trusts ``caCertificate`` alone when
given (the system's CAs otherwise), speaks TLS 1.2 or newer, and never prompts for a key's
passphrase. The settings must be the resolved ones (``${secret:NAME}`` replaced) and their files
were checked at startup (``config.startup_problems``); a file that cannot be loaded now (it
changed since) is a ``ConfigError`` naming its key. ``describe_brokers`` is for log lines and
never contains a password.
"""

from __future__ import annotations

import ssl
from typing import Any

from workflow_orchestrator.config import (
    ConfigError,
    ConfigProblem,
    KafkaSettings,
    KafkaTlsSettings,
)

__all__ = ["client_options", "describe_brokers", "ssl_context"]

_TLS = "eventProcessing.kafka.tls"


def _refuse_passphrase() -> str:
    # Without a configured password OpenSSL would ask on the terminal; fail instead.
    raise ValueError("the private key is encrypted and tls.privateKeyPassword is empty")


def _unusable(field: str, reason: str) -> ConfigError:
    return ConfigError([ConfigProblem(source="", key=f"{_TLS}.{field}", message=reason)])


def ssl_context(tls: KafkaTlsSettings) -> ssl.SSLContext:
    """The client TLS context of ``tls``: CAs, optional client certificate, TLS 1.2+.

    Raises ``ConfigError`` naming the key of a file that cannot be loaded.
    """
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=tls.ca_certificate or None
        )
    except (OSError, ValueError) as exc:
        raise _unusable("caCertificate", f"{tls.ca_certificate} cannot be loaded: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The chain is still verified (verify_mode stays CERT_REQUIRED); only the name is not.
    context.check_hostname = tls.check_hostname
    if tls.certificate:
        try:
            context.load_cert_chain(
                tls.certificate,
                tls.private_key or None,
                password=tls.private_key_password or _refuse_passphrase,
            )
        except (OSError, ValueError) as exc:
            raise _unusable(
                "certificate",
                f"{tls.certificate} and {tls.private_key} cannot be loaded: {exc}",
            ) from None
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments shared by aiokafka's consumer, producer and admin client.

    ``bootstrap_servers`` (a list), ``client_id`` (when set), ``security_protocol``; the SASL
    mechanism, user name and password with a SASL protocol; ``ssl_context`` with SSL or
    SASL_SSL. Raises ``ConfigError`` when a TLS file cannot be loaded.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_server_list),
        "security_protocol": settings.security_protocol,
    }
    if settings.client_id:
        options["client_id"] = settings.client_id
    if settings.uses_sasl:
        options["sasl_mechanism"] = settings.sasl.mechanism
        options["sasl_plain_username"] = settings.sasl.username
        options["sasl_plain_password"] = settings.sasl.password
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings.tls)
    return options


def describe_brokers(settings: KafkaSettings) -> str:
    """The brokers and how the service connects to them, for log lines (no password):
    ``k1:9092, k2:9092 (SASL_SSL; SCRAM-SHA-512 as 'wf'; CA /etc/kafka/ca.pem)``."""
    parts = [settings.security_protocol]
    if settings.uses_sasl:
        parts.append(f"{settings.sasl.mechanism} as {settings.sasl.username!r}")
    if settings.uses_tls:
        tls = settings.tls
        parts.append(f"CA {tls.ca_certificate}" if tls.ca_certificate else "the system's CAs")
        if tls.certificate:
            parts.append(f"client certificate {tls.certificate}")
        if not tls.check_hostname:
            parts.append("host names not checked")
    return f"{', '.join(settings.bootstrap_server_list)} ({'; '.join(parts)})"
