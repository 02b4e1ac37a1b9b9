"""The listeners' TLS: files that cannot be used stop startup naming the setting; what the
context enforces (minimum version, client certificates) is as configured; HTTPS drains."""

from __future__ import annotations

import logging
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from quart_trio import QuartTrio

from tests.support.certificates import CertificateAuthority, PemFiles, client_context
from tests.support.services import free_port
from workflow_orchestrator.config import LoadedConfig, load_config
from workflow_orchestrator.gateway import ListenerTls, TlsFileError, configured_tls, serve_app


def loaded(tmp_path: Path, settings: dict[str, Any]) -> LoadedConfig:
    return load_config(
        environ={}, overrides={k: ("test", v) for k, v in settings.items()}, cwd=tmp_path
    )


def tls(files: PemFiles, **extra: Any) -> dict[str, Any]:
    return {
        "server.tls": {
            "enabled": True,
            "certificate": str(files.certificate),
            "privateKey": str(files.private_key),
            **extra,
        }
    }


def error_of(tmp_path: Path, settings: dict[str, Any]) -> str:
    with pytest.raises(TlsFileError) as caught:
        configured_tls(loaded(tmp_path, settings))
    return str(caught.value)


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path)


def test_plain_http_without_tls(tmp_path: Path) -> None:
    """TLS off (the default): both listeners serve plain HTTP."""
    listeners = configured_tls(loaded(tmp_path, {}))
    assert listeners.api.context is None
    assert listeners.management.context is None


def test_management_port_uses_server_tls_unless_overridden(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """Without server.managementTls both ports share one context; with it, each has its own,
    and managementTls enabled: false leaves the management port plain HTTP."""
    server = authority.issue_server()
    shared = configured_tls(loaded(tmp_path, tls(server)))
    assert shared.api.context is not None
    assert shared.management is shared.api
    assert shared.api.describe() == "TLS 1.2 or newer"
    plain = configured_tls(
        loaded(tmp_path, {**tls(server), "server.managementTls": {"enabled": False}})
    )
    assert plain.api.context is not None
    assert plain.management == ListenerTls()


def test_context_enforces_the_settings(tmp_path: Path, authority: CertificateAuthority) -> None:
    """minimumVersion sets the context's minimum; clientCa requires client certificates."""
    server = authority.issue_server()
    settings = tls(server, minimumVersion="1.3", clientCa=str(authority.certificate_path))
    listener = configured_tls(loaded(tmp_path, settings)).api
    assert listener.context is not None
    assert listener.context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert listener.context.verify_mode == ssl.CERT_REQUIRED
    assert listener.describe() == "TLS 1.3 or newer, client certificates required"
    default = configured_tls(loaded(tmp_path, tls(server))).api.context
    assert default is not None
    assert default.minimum_version == ssl.TLSVersion.TLSv1_2
    assert default.verify_mode == ssl.CERT_NONE


def test_missing_certificate_names_the_setting(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """A certificate file that does not exist: one line naming server.tls.certificate."""
    server = authority.issue_server()
    missing = tmp_path / "nowhere.pem"
    settings = tls(PemFiles(certificate=missing, private_key=server.private_key))
    assert error_of(tmp_path, settings) == (
        f"test: server.tls.certificate: the file {missing} does not exist; give the PEM "
        "certificate chain of the listener (a Kubernetes TLS secret's tls.crt)"
    )


def test_files_that_are_not_what_they_should_be(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """A key where the certificate belongs, a folder as key, a CA file with no certificate:
    each names its own setting."""
    server = authority.issue_server()
    swapped = PemFiles(certificate=server.private_key, private_key=server.certificate)
    assert error_of(tmp_path, tls(swapped)).startswith(
        f"test: server.tls.certificate: {server.private_key} holds no PEM certificate "
        "(-----BEGIN CERTIFICATE-----); give"
    )
    folder = PemFiles(certificate=server.certificate, private_key=tmp_path)
    assert error_of(tmp_path, tls(folder)).startswith(
        f"test: server.tls.privateKey: {tmp_path} is a folder, not a file; give the listener's "
        "PEM private key"
    )
    not_ca = tmp_path / "empty.pem"
    not_ca.write_text("")
    assert error_of(tmp_path, tls(server, clientCa=str(not_ca))) == (
        f"test: server.tls.clientCa: {not_ca} holds no PEM certificate "
        "(-----BEGIN CERTIFICATE-----); give a PEM file of the CA certificates that issue "
        "client certificates, or leave it empty (no client certificates)"
    )


def test_mismatched_or_encrypted_key_names_private_key(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """The key of another certificate, or an encrypted key, names server.tls.privateKey."""
    server = authority.issue_server()
    other = authority.issue_server("other")
    mismatched = PemFiles(certificate=server.certificate, private_key=other.private_key)
    assert error_of(tmp_path, tls(mismatched)).startswith(
        f"test: server.tls.privateKey: the private key in {other.private_key} does not belong "
        f"to the certificate in {server.certificate} (server.tls.certificate); give"
    )
    key = serialization.load_pem_private_key(server.private_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    locked = PemFiles(certificate=server.certificate, private_key=encrypted)
    assert error_of(tmp_path, tls(locked)).startswith(
        f"test: server.tls.privateKey: the private key in {encrypted} is encrypted; the "
        "service cannot ask for a passphrase; give"
    )


def test_management_tls_errors_name_management_tls(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """A file of server.managementTls names server.managementTls, not server.tls."""
    missing = tmp_path / "gone-key.pem"
    server = authority.issue_server()
    settings = {
        "server.managementTls": {
            "enabled": True,
            "certificate": str(server.certificate),
            "privateKey": str(missing),
        }
    }
    assert error_of(tmp_path, settings).startswith(
        f"test: server.managementTls.privateKey: the file {missing} does not exist; give"
    )


def test_expired_certificate_is_a_warning(
    tmp_path: Path, authority: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired certificate does not stop startup, but says so in a WARNING."""
    expired = authority.issue("old", hosts=("127.0.0.1",), expired=True)
    with caplog.at_level(logging.WARNING):
        listener = configured_tls(loaded(tmp_path, tls(expired))).api
    assert listener.context is not None
    assert f"the certificate in {expired.certificate} (server.tls.certificate) expired on" in (
        caplog.text
    )


async def test_https_request_in_flight_finishes_after_shutdown(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    """Over HTTPS the drain is kept: a request running at shutdown still gets its answer."""
    listener = configured_tls(loaded(tmp_path, tls(authority.issue_server()))).api
    app = QuartTrio("slow")
    entered, release, shutdown = trio.Event(), trio.Event(), trio.Event()

    @app.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "finished"

    port = free_port()
    answers: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(
                    serve_app,
                    app,
                    name="test",
                    host="127.0.0.1",
                    port=port,
                    tls=listener,
                    shutdown=shutdown,
                    grace_period=10,
                )
            )
            assert binds == [f"https://127.0.0.1:{port}"]

            async def call() -> None:
                async with httpx.AsyncClient(verify=client_context(authority)) as client:
                    answers.append((await client.get(f"https://127.0.0.1:{port}/slow")).text)

            nursery.start_soon(call)
            await entered.wait()
            shutdown.set()
            await trio.sleep(0.2)  # the listener is draining now
            release.set()
    assert answers == ["finished"]
