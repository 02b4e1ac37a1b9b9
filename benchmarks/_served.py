"""The service as operators run it, for the benchmarks that measure worker processes.

``served_service`` writes a configuration file with the benchmark's settings, starts
``workflow-orchestrator serve --config FILE [--workers N]`` in a child process,
waits until ``/health/ready`` answers 200 on the management port, yields a `Served` (the API's
base URL, the management URL, the parent's pid) and stops it with SIGTERM at the end (SIGKILL
of the whole process group if it has not exited after the grace period). Unlike the
in-process runs of ``throughput.py``, the benchmark then sees the service only from outside:
through HTTP and the database, as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import trio
import yaml
from _common import HERE, free_port, with_sets

READY_TIMEOUT = 120.0


class Served:
    def __init__(self, api: str, management: str, process: trio.Process) -> None:
        self.api = api
        self.management = management
        self.process = process

    def process_ids(self) -> list[int]:
        """The parent and its children (the worker processes), from /proc."""
        pids = [self.process.pid]
        # Each thread lists the children it started (the parent may start workers from any).
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            with suppress(OSError):
                pids += [int(p) for p in children.read_text().split()]
        return pids

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds used so far by the parent and by each live worker, by pid."""
        ticks = os.sysconf("SC_CLK_TCK")
        used: dict[int, float] = {}
        for pid in self.process_ids():
            try:
                text = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2 :].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the parent and its live workers."""
        return sum(self.cpu_by_process().values())

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(f"{self.management}/metrics")
            response.raise_for_status()
            return response.text


def nested(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}`` (the configuration file's shape)."""
    tree: dict[str, Any] = {}
    for key, value in settings.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


@asynccontextmanager
async def served_service(
    database_url: str,
    *,
    workers: int,
    replica_id: str,
    settings: Mapping[str, Any] | None = None,
    sets: Iterable[str] | None = None,
    log: Path | None = None,
) -> AsyncIterator[Served]:
    """Run ``serve`` with ``workers`` processes on free ports against ``database_url``, with
    ``settings`` (dotted keys) overridden by ``sets`` (``KEY=VALUE``)."""
    port, management_port = free_port(), free_port()
    merged: dict[str, Any] = {
        "database.url": database_url,
        "server.port": port,
        "server.managementPort": management_port,
        "server.host": "127.0.0.1",
        "server.shutdownGracePeriod": "5s",
        "cluster.replicaId": replica_id,
        "logging.level": "WARNING",
        **with_sets(settings or {}, sets),
    }
    with tempfile.TemporaryDirectory(prefix="bench-served-") as folder:
        config = Path(folder) / "application.yaml"
        config.write_text(yaml.safe_dump(nested(merged)))
        command = [*_serve_command(), "--config", str(config)]
        if workers != 1:
            command += ["--workers", str(workers)]
        output = log.open("ab") if log is not None else subprocess.DEVNULL
        process = await trio.lowlevel.open_process(
            command,
            stdout=output,
            stderr=output,
            cwd=HERE,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")},
        )
        served = Served(
            f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{management_port}", process
        )
        try:
            await _wait_ready(served)
            yield served
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)
                if log is not None and not isinstance(output, int):
                    output.close()


def _serve_command() -> list[str]:
    """``workflow-orchestrator serve`` of this interpreter's environment (its console script,
    as operators run it)."""
    script = Path(sys.executable).parent / "workflow-orchestrator"
    if script.exists():
        return [str(script), "serve"]
    entry = "import sys; from workflow_orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", entry, "serve"]


async def _wait_ready(served: Served) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if served.process.poll() is not None:
                raise RuntimeError(f"serve exited with {served.process.returncode} at start")
            try:
                response = await client.get(f"{served.management}/health/ready")
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.2)
    raise RuntimeError(f"serve was not ready within {READY_TIMEOUT:.0f}s")


async def _stop(process: trio.Process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(30):
            await process.wait()
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        with trio.move_on_after(10):
            await process.wait()
