"""Run the real ``workflow-orchestrator serve`` process for end-to-end tests."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import httpx
import yaml

from tests.support.service import ALLOW_LOOPBACK
from tests.support.services import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


@attrs.define
class RunningService:
    """A started service process and where to reach it."""

    process: subprocess.Popen[str]
    api: str
    management: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0
    ) -> tuple[int, float]:
        """Send ``sig`` and wait; returns the exit code and how long the exit took."""
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


def loopback_config(folder: Path) -> Path:
    """A configuration file (``--config``) that lets the service's workflows call stubs on
    loopback, which the default outbound policy refuses."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "outbound.yaml"
    path.write_text(yaml.safe_dump({"security": {"outbound": {"allow": ALLOW_LOOPBACK}}}))
    return path


@contextmanager
def run_service(
    tmp_path: Path,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 90.0,
    ready_path: str = "/health/ready",
    cwd: Path | None = None,
    command: Sequence[str] = (sys.executable, "-m", "workflow_orchestrator.cli"),
    subcommand: Sequence[str] = ("serve",),
    base_env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> Iterator[RunningService]:
    """Start ``serve`` on free ports and wait until ``ready_path`` answers 200.

    ``command`` is the program before ``subcommand`` (``()`` for ``bin/start.sh``, which adds
    ``serve`` itself); ``base_env`` replaces our environment (whose
    ``DATABASE_*`` and ``WORKFLOW_*`` variables are dropped) under ``env``; ``user`` runs the
    process as that account (we must be root), with its primary group and no other groups.
    """
    api_port, management_port = free_port(), free_port()
    inherited = os.environ if base_env is None else base_env
    environment = {
        **{k: v for k, v in inherited.items() if not k.startswith(("DATABASE_", "WORKFLOW_"))},
        "SERVER_PORT": str(api_port),
        "MANAGEMENT_PORT": str(management_port),
        **(env or {}),
    }
    account = {} if user is None else {"user": user, "group": pwd.getpwnam(user).pw_gid}
    log_path = tmp_path / "service.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, *subcommand, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            cwd=cwd or tmp_path,
            extra_groups=None if user is None else [],
            **account,
        )
    service = RunningService(
        process=process,
        api=f"http://127.0.0.1:{api_port}",
        management=f"http://127.0.0.1:{management_port}",
        log_path=log_path,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"service exited with {process.returncode}:\n{service.log()}")
            try:
                if httpx.get(f"{service.management}{ready_path}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"service not ready in {ready_timeout}s:\n{service.log()}")
            time.sleep(0.2)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
