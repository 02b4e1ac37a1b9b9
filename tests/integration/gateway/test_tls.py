"""The real service over TLS with certificates made in the test: both ports answer HTTPS
verified against the test CA, plain HTTP and the wrong clients are refused, mTLS, the minimum
version, a management port with its own TLS or its own address, and a missing file."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support.certificates import CertificateAuthority, PemFiles, client_context
from tests.support.service import InProcessService, open_service
from workflow_orchestrator.errors import exception_leaves
from workflow_orchestrator.gateway import ListenerError, TlsFileError
from workflow_orchestrator.supervision import ChildStartFailed

pytestmark = pytest.mark.integration

DEFINITIONS = "/v1/workflow-definitions"


def tls_settings(server: PemFiles, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "certificate": str(server.certificate),
        "privateKey": str(server.private_key),
        **extra,
    }


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def get(url: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    """One GET on a fresh connection."""
    async with httpx.AsyncClient(verify=verify, timeout=10) as client:
        return await client.get(url)


async def assert_refused(url: str, verify: ssl.SSLContext | bool = True) -> None:
    """No HTTP answer comes back: the connection ends in the handshake (or before)."""
    with pytest.raises(httpx.TransportError):
        await get(url, verify)


async def assert_both_ports_answer(app: InProcessService) -> None:
    response = await app.api.get(DEFINITIONS)
    assert response.status_code == 200, response.text
    response = await app.management.get("/health/live")
    assert response.status_code == 200, response.text


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path, "good")


@pytest.fixture
def stranger(tmp_path: Path) -> CertificateAuthority:
    """Another CA: its certificates prove nothing to the service."""
    return CertificateAuthority.create(tmp_path, "other")


async def test_both_ports_serve_https_only(
    database_url: str, authority: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """With server.tls both ports answer HTTPS verified against the test CA, say https:// in
    their log lines, refuse plain HTTP, and a client not trusting the CA refuses them."""
    settings = {"server.tls": tls_settings(authority.issue_server())}
    with trio.fail_after(60), caplog.at_level(logging.INFO):
        async with open_service(
            database_url, settings=settings, client_tls=client_context(authority)
        ) as app:
            api, management = app.addresses.api[0], app.addresses.management[0]
            assert api.startswith("https://127.0.0.1:")
            assert management.startswith("https://127.0.0.1:")
            await assert_both_ports_answer(app)
            for url in (api, management):
                await assert_refused(url.replace("https://", "http://") + "/health/live")
                await assert_refused(url + "/health/live", verify=True)  # the system CAs
    assert f"API listening on {api} (TLS 1.2 or newer)" in caplog.text
    assert f"management listener listening on {management} (TLS 1.2 or newer)" in caplog.text


async def test_mutual_tls_requires_a_client_certificate_of_the_client_ca(
    database_url: str, authority: CertificateAuthority, stranger: CertificateAuthority
) -> None:
    """With clientCa, on both ports: no client certificate is refused, one issued by another
    CA is refused, one issued by the client CA is answered."""
    settings = {
        "server.tls": tls_settings(
            authority.issue_server(), clientCa=str(authority.certificate_path)
        )
    }
    good = client_context(authority, certificate=authority.issue_client("alice"))
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings, client_tls=good) as app:
            await assert_both_ports_answer(app)
            foreign = client_context(authority, certificate=stranger.issue_client("mallory"))
            api, management = app.addresses.api[0], app.addresses.management[0]
            for url in (f"{api}/api{DEFINITIONS}", f"{management}/health/live"):
                await assert_refused(url, client_context(authority))
                await assert_refused(url, foreign)
                assert (await get(url, good)).status_code == 200


async def test_minimum_version_refuses_older_clients(
    database_url: str, authority: CertificateAuthority
) -> None:
    """minimumVersion 1.3 refuses a client that speaks at most TLS 1.2; 1.2 (the default)
    accepts it."""
    server = authority.issue_server()
    tls12 = client_context(authority, maximum_version=ssl.TLSVersion.TLSv1_2)
    with trio.fail_after(90):
        settings = {"server.tls": tls_settings(server, minimumVersion="1.3")}
        async with open_service(
            database_url, settings=settings, client_tls=client_context(authority)
        ) as app:
            await assert_both_ports_answer(app)
            for base in (app.addresses.api[0], app.addresses.management[0]):
                await assert_refused(base + "/health/live", tls12)
        async with open_service(
            database_url, settings={"server.tls": tls_settings(server)}, client_tls=tls12
        ) as app:
            await assert_both_ports_answer(app)


async def test_management_tls_overrides_server_tls(
    database_url: str, authority: CertificateAuthority, stranger: CertificateAuthority
) -> None:
    """server.managementTls replaces server.tls on the management port: its own certificate
    and no client certificates there while the API requires them; enabled: false is plain."""
    settings = {
        "server.tls": tls_settings(
            authority.issue_server(), clientCa=str(authority.certificate_path)
        ),
        "server.managementTls": tls_settings(stranger.issue_server("management")),
    }
    api_client = client_context(authority, certificate=authority.issue_client())
    with trio.fail_after(90):
        async with open_service(database_url, settings=settings, client_tls=api_client) as app:
            assert (await app.api.get(DEFINITIONS)).status_code == 200
            management = app.addresses.management[0] + "/health/live"
            assert (await get(management, client_context(stranger))).status_code == 200
            await assert_refused(management, client_context(authority))  # not its CA
            await assert_refused(app.addresses.api[0] + "/health/live", client_context(stranger))
        settings["server.managementTls"] = {"enabled": False}
        async with open_service(database_url, settings=settings, client_tls=api_client) as app:
            assert app.addresses.management[0].startswith("http://127.0.0.1:")
            await assert_both_ports_answer(app)


async def test_management_host_binds_the_management_port_apart(database_url: str) -> None:
    """managementHost 127.0.0.2: the management port listens there and not on server.host
    (127.0.0.1), and the API does not listen on 127.0.0.2."""
    with trio.fail_after(60):
        async with open_service(
            database_url, settings={"server.managementHost": "127.0.0.2"}
        ) as app:
            management, api = app.addresses.management[0], app.addresses.api[0]
            assert management.startswith("http://127.0.0.2:")
            assert api.startswith("http://127.0.0.1:")
            await assert_both_ports_answer(app)
            await assert_refused(f"http://127.0.0.1:{port_of(management)}/health/live")
            await assert_refused(f"http://127.0.0.2:{port_of(api)}/api{DEFINITIONS}")


async def test_missing_certificate_stops_startup(
    database_url: str, authority: CertificateAuthority, tmp_path: Path
) -> None:
    """A certificate file that does not exist stops startup, naming server.tls.certificate."""
    server = authority.issue_server()
    missing = tmp_path / "missing.pem"
    settings = {
        "server.tls": tls_settings(PemFiles(certificate=missing, private_key=server.private_key))
    }
    with trio.fail_after(60), pytest.raises(TlsFileError) as caught:
        async with open_service(database_url, settings=settings):
            raise AssertionError("the service started")
    assert str(caught.value) == (
        f"test: server.tls.certificate: the file {missing} does not exist; give the PEM "
        "certificate chain of the listener (a Kubernetes TLS secret's tls.crt)"
    )


async def test_management_host_not_of_this_machine_names_the_setting(database_url: str) -> None:
    """A managementHost the machine does not have stops startup naming server.managementHost."""
    settings = {"server.managementHost": "192.0.2.1"}  # TEST-NET-1: never a local address
    with trio.fail_after(60), pytest.raises(BaseExceptionGroup) as caught:
        async with open_service(database_url, settings=settings):
            raise AssertionError("the service started")
    failures = [
        leaf.__cause__
        for leaf in exception_leaves(caught.value)
        if isinstance(leaf, ChildStartFailed) and isinstance(leaf.__cause__, ListenerError)
    ]
    assert len(failures) == 1, caught.value
    message = str(failures[0])
    assert message.startswith("cannot listen on 192.0.2.1:"), message
    assert message.endswith(
        "for the management listener: cannot assign requested address; set "
        "server.managementHost to an address of this machine, e.g. 0.0.0.0 (all) or 127.0.0.1"
    )
