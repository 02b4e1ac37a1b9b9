"""What authentication costs on the API: reads and starts per second, with it off, with an
unrestricted API key, with a key limited to one namespace (lists filtered, every instance
checked), and with an OIDC token (RS256, JWKS served locally).

Each mode runs its own service in this process on a scratch database; the client runs here too,
``--concurrency`` requests in flight. Run: ``.venv/bin/python benchmarks/security_overhead.py``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import (
    DEFAULT_SERVER,
    register_definition,
    run_concurrently,
    scratch_database,
    service_config,
    start_service,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.jwks_server import serve_jwks
from tests.support.tokens import AUDIENCE, ISSUER, claims, jwks_of, new_rsa_key
from workflow_orchestrator.service import Service

DEFINITION = """
document: {dsl: '1.0.0', namespace: shop, name: bench-security, version: '1.0.0'}
do:
  - done:
      set: {ok: true}
"""
KEY = secrets.token_hex(24)
SIGNER = new_rsa_key("bench-1")


async def measure(
    name: str, settings: Mapping[str, Any], header: str | None, args: argparse.Namespace
) -> None:
    async with scratch_database(DEFAULT_SERVER, f"wo_bench_sec_{uuid.uuid4().hex[:8]}") as url:
        loaded, port, _ = service_config(
            url, pool_size=10, replica_id=f"bench-{name}", settings=settings
        )
        service = Service(loaded)
        async with trio.open_nursery() as nursery:
            await start_service(nursery, service)
            api = f"http://127.0.0.1:{port}/api"
            headers = {"Authorization": header} if header else {}
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
                await register_definition(api, DEFINITION, client)

                async def read(_: int) -> None:
                    response = await client.get(f"{api}/v1/workflow-definitions/bench-security")
                    response.raise_for_status()

                async def start(_: int) -> None:
                    response = await client.post(
                        f"{api}/v1/workflow-instances",
                        json={"workflowDefinitionId": "bench-security"},
                    )
                    response.raise_for_status()

                figures = []
                for label, job, n in (("reads", read, args.reads), ("starts", start, args.starts)):
                    began = time.perf_counter()
                    await run_concurrently(n, args.concurrency, job)
                    figures.append(f"{label} {n / (time.perf_counter() - began):7.0f}/s")
            print(f"{name:<28} {'  '.join(figures)}", flush=True)
            service.request_shutdown()


async def main(args: argparse.Namespace) -> None:
    auth = {"security.authentication.enabled": True}
    key = {"name": "bench", "key": KEY, "roles": ["operator", "developer"]}
    async with serve_jwks(jwks_of(SIGNER)) as jwks:
        token = SIGNER.mint(claims(roles=["operator", "developer"], namespaces=None))
        modes: list[tuple[str, dict[str, Any], str | None]] = [
            ("authentication off", {}, None),
            (
                "API key, all namespaces",
                {**auth, "security.authentication.apiKeys": [key]},
                f"Bearer {KEY}",
            ),
            (
                "API key, namespace shop",
                {**auth, "security.authentication.apiKeys": [{**key, "namespaces": ["shop"]}]},
                f"Bearer {KEY}",
            ),
            (
                "OIDC token (RS256)",
                {
                    **auth,
                    "security.authentication.oidc": {
                        "enabled": True,
                        "issuer": ISSUER,
                        "audience": AUDIENCE,
                        "jwksUrl": jwks.url,
                    },
                },
                f"Bearer {token}",
            ),
        ]
        for name, settings, header in modes:
            await measure(name, settings, header, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--starts", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16)
    trio.run(main, parser.parse_args())
