"""Where the real PostgreSQL and RabbitMQ of the test run are, and per-test databases.

Locations come from ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and ``TEST_RABBITMQ_URL``. A test that needs a service it cannot reach FAILS when ``CI`` is set
and skips with the reason otherwise. Databases are created and dropped with ``psql`` so that no
asyncio loop is needed outside the code under test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.parse
import uuid
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "psql").is_file():
            return str(folder / "psql")
    unavailable("psql is not installed; install the PostgreSQL client")
    raise AssertionError("unreachable")


def url_for(database: str, base: str = POSTGRES_URL) -> str:
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def psql(sql: str, *, database_url: str = POSTGRES_URL, check: bool = True) -> str:
    result = subprocess.run(
        [psql_binary(), database_url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def require_reachable(label: str, url: str, default_port: int) -> None:
    """Fail (CI) or skip unless the server of ``url`` accepts TCP connections."""
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ).close()
    except OSError as exc:
        unavailable(f"{label} at {parts.hostname}:{parts.port} is unreachable: {exc}")


def require_postgres() -> None:
    require_reachable("PostgreSQL", POSTGRES_URL, 5432)


def create_database(prefix: str = "wo_test") -> str:
    """A new empty database; returns its name."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    psql(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now, never one this process handed out before (two calls in a row, for an
    API and a management port, could otherwise get the same number back)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
