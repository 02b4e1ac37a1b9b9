"""Schemathesis against the API until at least ``--requests`` requests (default 10,000) were
sent; prints the counts by status class and every 5xx, and exits 1 on any 5xx (or a request
that got no answer), 0 otherwise.

Each round runs schemathesis' phases on ``GET /api/openapi.json``: the documented examples,
coverage (boundaries, negative values, wrong media types, unexpected methods), fuzzing and
stateful sequences along the document's links; rounds use different seeds until the total is
reached.

    # against a running service
    .venv/bin/python benchmarks/schemathesis_run.py --url http://127.0.0.1:8080/api/openapi.json
    # or start one on a fresh database of this PostgreSQL server (dropped afterwards)
    .venv/bin/python benchmarks/schemathesis_run.py --start postgresql://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.schemathesis_campaign import CampaignResult, run_campaign  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _with_database(server: str, database: str) -> str:
    parts = urllib.parse.urlsplit(server)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(_with_database(server, "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def started_service(server: str) -> Iterator[str]:
    """A service process on a fresh database of ``server``; yields its OpenAPI URL."""
    database = f"wo_schemathesis_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{database}"'))
    port, management = _free_port(), _free_port()
    command = [
        sys.executable,
        "-c",
        "from workflow_orchestrator.cli import main; main()",
        "serve",
        "--url",
        _with_database(server, database),
        "--port",
        str(port),
        "--management-port",
        str(management),
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    # cwd: a folder without config/application.yaml, so only the defaults apply.
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "service.log", "w+") as log:
        process = subprocess.Popen(
            command, cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}/api/openapi.json"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"the service did not start:\n{log.read()[-4000:]}")
                time.sleep(0.5)
            print(f"service on port {port}, database {database}", flush=True)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.seek(0)
            errors = [line.rstrip() for line in log if " ERROR " in line]
            print(f"the service logged {len(errors)} ERROR line(s)")
            for line in errors[:10]:
                print(f"    {line[:300]}")
            asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def campaign(url: str, arguments: argparse.Namespace) -> list[CampaignResult]:
    results: list[CampaignResult] = []
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    total = 0
    round_number = 0
    while total < arguments.requests:
        round_number += 1
        started = time.monotonic()
        result = run_campaign(
            url,
            max_examples=arguments.max_examples,
            stateful_steps=arguments.stateful_steps,
            workers=arguments.workers,
            seed=seed + round_number,
        )
        results.append(result)
        total += result.requests
        print(
            f"round {round_number} (seed {seed + round_number}): {result.requests:,} requests "
            f"in {time.monotonic() - started:.0f}s, {result.by_class}; total {total:,}",
            flush=True,
        )
        if result.requests == 0:
            raise SystemExit("schemathesis sent no request; is the URL right?")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", default="http://127.0.0.1:8080/api/openapi.json")
    where.add_argument("--start", metavar="POSTGRES_SERVER_URL")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--stateful-steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int)
    arguments = parser.parse_args()
    if arguments.start:
        with started_service(arguments.start) as url:
            results = campaign(url, arguments)
    else:
        results = campaign(arguments.url, arguments)
    merged = CampaignResult.merge(results)
    print(merged.report())
    print("OK: no server error" if merged.ok else "FAILED: server errors above")
    return 0 if merged.ok else 1


if __name__ == "__main__":
    sys.exit(main())
