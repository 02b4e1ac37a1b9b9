"""A local S3 server (moto's, from the ``moto[server]`` test extra) for programs that keep their
data in S3, such as the Kafka test broker's durable storage.

``open_s3_server(log_path)`` starts ``python -m moto.server`` on a free port of 127.0.0.1 as a
task of its own nursery, waits until it answers HTTP, and stops it when the block ends (also on
failure). Its objects live in the server's memory: they survive restarts of the programs that
use it, never the server itself. ``create_bucket`` makes a bucket (moto checks no signature);
``client_environment`` is what an S3 client (the AWS SDKs, Rust's object_store) needs to reach
it over plain HTTP with dummy credentials.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import trio

from tests.support.child_process import ChildProcess
from tests.support.services import free_port

__all__ = ["S3Server", "open_s3_server"]

_START_TIMEOUT = 30.0
_REGION = "us-east-1"


@attrs.define(eq=False)
class S3Server:
    """A running moto S3 server at ``endpoint`` (``http://127.0.0.1:PORT``)."""

    endpoint: str
    process: ChildProcess

    def client_environment(self) -> dict[str, str]:
        """Environment variables that point an S3 client at this server."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": _REGION,
            "AWS_REGION": _REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    async def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (an existing one of ours is kept)."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.put(f"{self.endpoint}/{name}")
        if response.status_code != 200:
            raise RuntimeError(
                f"creating S3 bucket {name!r} failed: {response.status_code} {response.text}"
            )


async def _wait_until_serving(server: S3Server) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        with trio.move_on_after(_START_TIMEOUT):
            while server.process.running:
                try:
                    await client.get(f"{server.endpoint}/")
                    return
                except httpx.TransportError:
                    await trio.sleep(0.05)
    raise RuntimeError(
        f"the S3 server (moto) did not answer at {server.endpoint} within {_START_TIMEOUT:g} s "
        f"(exit status {server.process.returncode}); its log {server.process.log_path} ends "
        f"with:\n{server.process.log_tail()}"
    )


@asynccontextmanager
async def open_s3_server(log_path: Path) -> AsyncIterator[S3Server]:
    """A moto S3 server on a free port for the block; its output goes to ``log_path``."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    async with trio.open_nursery() as nursery:
        process = ChildProcess(
            command=(sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)),
            env=environment,
            log_path=log_path,
            nursery=nursery,
        )
        server = S3Server(endpoint=f"http://127.0.0.1:{port}", process=process)
        try:
            await process.start()
            await _wait_until_serving(server)
            yield server
        finally:
            await process.stop()
