"""The whole service in the test's own Trio run (real database, real listeners)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from tests.support.services import free_port
from workflow_orchestrator.config import load_config
from workflow_orchestrator.service import Service, ServiceAddresses

#: ``security.outbound.allow`` of test services: their workflows call stubs on loopback, which
#: the default outbound policy refuses (a test of the policy gives ``allow: []``).
ALLOW_LOOPBACK = ["127.0.0.0/8", "::1"]


@attrs.frozen
class InProcessService:
    """A running service, an HTTP client for its API, and where it listens."""

    service: Service
    addresses: ServiceAddresses
    api: httpx.AsyncClient
    management: httpx.AsyncClient


@asynccontextmanager
async def open_service(
    database_url: str,
    *,
    settings: dict[str, Any] | None = None,
    client_tls: ssl.SSLContext | None = None,
    host_map: Mapping[str, str] | None = None,
) -> AsyncIterator[InProcessService]:
    """Run ``Service`` on free ports against ``database_url`` until the block ends.

    ``host_map`` sends the workflows' calls to other hosts (``Service.host_map``).

    The clients go to the first URL each listener reports (``https://`` when it serves TLS);
    ``client_tls`` is their TLS context (the CA to trust, a client certificate).
    """
    overrides: dict[str, tuple[str, Any]] = {
        "database.url": ("test", database_url),
        "server.port": ("test", free_port()),
        "server.managementPort": ("test", free_port()),
        "server.host": ("test", "127.0.0.1"),
        "server.shutdownGracePeriod": ("test", "2s"),
        "cluster.replicaId": ("test", f"test-{free_port()}"),
        "security.outbound.allow": ("test", ALLOW_LOOPBACK),
    }
    overrides.update({k: ("test", v) for k, v in (settings or {}).items()})
    # cwd: a folder with no config/ so a developer's own application.yaml is not read.
    loaded = load_config(environ={}, overrides=overrides, cwd=Path(__file__).parent)
    service = Service(loaded, host_map=dict(host_map or {}))
    async with trio.open_nursery() as nursery:
        addresses: ServiceAddresses = await nursery.start(service.run)
        verify: ssl.SSLContext | bool = True if client_tls is None else client_tls
        async with (
            httpx.AsyncClient(base_url=f"{addresses.api[0]}/api", timeout=30, verify=verify) as api,
            httpx.AsyncClient(base_url=addresses.management[0], verify=verify) as mgmt,
        ):
            try:
                yield InProcessService(
                    service=service, addresses=addresses, api=api, management=mgmt
                )
            finally:
                service.request_shutdown()


async def register_yaml(app: InProcessService, text: str) -> None:
    """Register a definition written in YAML; it must be new (201)."""
    response = await app.api.post(
        "/v1/workflow-definitions", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
