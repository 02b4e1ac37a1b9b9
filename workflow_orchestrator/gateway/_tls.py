"""HTTPS for the two listeners: the TLS context each serves with, from ``server.tls`` and
``server.managementTls``.

``configured_tls`` reads every file once, when the service is built and before anything starts:
a missing or unreadable file, a file holding no PEM certificate, a private key that is encrypted
or does not belong to the certificate, is a ``TlsFileError`` (a configuration error, exit code
2) of one line naming the setting, where its value came from, and what to give instead, never a
traceback at the first handshake. ``server.managementTls`` absent means the management port
serves with ``server.tls`` (one context, the files read once); given, it replaces
``server.tls`` for that port as a whole (fields are not merged).

Each context: at least TLS ``minimumVersion`` (1.2 or 1.3); for TLS 1.2 only ECDHE key
exchange with AEAD ciphers (what HTTP/2 requires, RFC 9113 section 9.2); ALPN ``h2`` and
``http/1.1``; no compression. With ``clientCa`` a client certificate issued by one of its CAs
is required (mTLS): a connection without one, or with another CA's, ends in the handshake and
never reaches the app. A certificate already expired is logged as a WARNING (clients will
refuse it) but does not stop startup.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import Callable
from typing import NoReturn

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from workflow_orchestrator.config import (
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    TlsSettings,
    read_pem_file,
    refuse_passphrase,
)

__all__ = ["ListenerTls", "ListenersTls", "TlsFileError", "configured_tls"]

logger = logging.getLogger(__name__)

# TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all of that kind).
_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# No PEM file of a listener is this large; the bound keeps a wrong path (a device) harmless.
_WHAT = {
    "certificate": "the PEM certificate chain of the listener (a Kubernetes TLS secret's tls.crt)",
    "privateKey": "the listener's PEM private key, unencrypted (a Kubernetes TLS secret's tls.key)",
    "clientCa": "a PEM file of the CA certificates that issue client certificates, or leave it "
    "empty (no client certificates)",
}


class TlsFileError(ConfigError):
    """A file named by ``server.tls`` or ``server.managementTls`` cannot be used."""

    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__([problem])

    def __str__(self) -> str:
        return str(self.problems[0])


@attrs.frozen(kw_only=True)
class ListenerTls:
    """How one listener serves: ``context`` None is plain HTTP."""

    context: ssl.SSLContext | None = None
    minimum_version: str = "1.2"
    client_certificates: bool = False

    def describe(self) -> str:
        """A few words for the listener's log line (empty for plain HTTP)."""
        if self.context is None:
            return ""
        clients = ", client certificates required" if self.client_certificates else ""
        return f"TLS {self.minimum_version} or newer{clients}"


@attrs.frozen(kw_only=True)
class ListenersTls:
    """The TLS of the API listener and of the management listener."""

    api: ListenerTls = attrs.field(factory=ListenerTls)
    management: ListenerTls = attrs.field(factory=ListenerTls)


def _read(path: str, fail: Callable[[str], NoReturn]) -> bytes:
    data = read_pem_file(path)
    if isinstance(data, str):
        fail(data)
    return data


def _certificates(
    data: bytes, path: str, fail: Callable[[str], NoReturn]
) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        fail(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


def _private_key(data: bytes, path: str, fail: Callable[[str], NoReturn]) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        fail(f"the private key in {path} is encrypted; the service cannot ask for a passphrase")
    except ValueError:
        fail(f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
    except UnsupportedAlgorithm as exc:
        fail(f"{path} holds a private key of a kind the service cannot use: {exc}")


def _public_der(key: PrivateKeyTypes | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def create_tls_context(
    tls: TlsSettings, *, prefix: str, source_of: Callable[[str], str]
) -> ssl.SSLContext:
    """The server context of ``tls`` (enabled); ``prefix`` is ``server.tls`` or
    ``server.managementTls``, for the errors. Raises ``TlsFileError``."""

    def failing(field: str) -> Callable[[str], NoReturn]:
        key = f"{prefix}.{field}"

        def fail(reason: str) -> NoReturn:
            message = f"{reason}; give {_WHAT[field]}"
            raise TlsFileError(ConfigProblem(source=source_of(key), key=key, message=message))

        return fail

    certificate_fail = failing("certificate")
    chain = _certificates(
        _read(tls.certificate, certificate_fail),
        tls.certificate,
        certificate_fail,
    )
    key_fail = failing("privateKey")
    private_key = _private_key(_read(tls.private_key, key_fail), tls.private_key, key_fail)
    if _public_der(private_key) != _public_der(chain[0]):
        key_fail(
            f"the private key in {tls.private_key} does not belong to the certificate in "
            f"{tls.certificate} ({prefix}.certificate)"
        )
    if chain[0].not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        logger.warning(
            "the certificate in %s (%s.certificate) expired on %s; clients will refuse it",
            tls.certificate,
            prefix,
            chain[0].not_valid_after_utc.isoformat(),
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = _VERSIONS[tls.minimum_version]
    context.set_ciphers(_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        context.load_cert_chain(tls.certificate, tls.private_key, password=refuse_passphrase)
    except (OSError, ValueError) as exc:  # the files changed since they were read
        certificate_fail(f"{tls.certificate} and {tls.private_key} cannot be loaded: {exc}")
    if tls.client_ca:
        ca_fail = failing("clientCa")
        _certificates(_read(tls.client_ca, ca_fail), tls.client_ca, ca_fail)
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ValueError) as exc:
            ca_fail(f"{tls.client_ca} cannot be loaded: {exc}")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _listener_tls(tls: TlsSettings, prefix: str, loaded: LoadedConfig) -> ListenerTls:
    if not tls.enabled:
        return ListenerTls()
    return ListenerTls(
        context=create_tls_context(tls, prefix=prefix, source_of=loaded.source_of),
        minimum_version=tls.minimum_version,
        client_certificates=bool(tls.client_ca),
    )


def configured_tls(loaded: LoadedConfig) -> ListenersTls:
    """The TLS of both listeners from ``server.tls`` and ``server.managementTls``.

    Reads the files now; raises ``TlsFileError`` naming the setting of the first file that
    cannot be used.
    """
    server = loaded.settings.server
    api = _listener_tls(server.tls, "server.tls", loaded)
    if server.management_tls is None:
        return ListenersTls(api=api, management=api)
    management = _listener_tls(server.management_tls, "server.managementTls", loaded)
    return ListenersTls(api=api, management=management)
