"""Who listens on a TCP port, as the guide's troubleshooting tools (netstat, ss, pgrep) show it."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.support.services import unavailable

#: The Debian package of each tool, for the message when it is missing.
PACKAGES = {"netstat": "net-tools", "ss": "iproute2", "pgrep": "procps"}


def run_tool(*command: str) -> str:
    """The standard output of ``command``; a missing tool skips (fails under CI)."""
    if shutil.which(command[0]) is None:
        unavailable(f"{command[0]} is not installed; install {PACKAGES[command[0]]}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode in (0, 1), result.stderr  # pgrep: 1 = nothing matched
    return result.stdout


def listening_lines(output: str, port: int) -> list[str]:
    """The lines of ``netstat``/``ss`` output whose local address ends with ``:port``."""
    return [line for line in output.splitlines() if re.search(rf":{port}\s", line)]


def netstat_programs(port: int) -> set[str]:
    """The ``PID/Program name`` column of ``netstat -tulpn`` for the sockets listening on
    ``port``, e.g. ``{"12345/workflow-orch"}``."""
    lines = listening_lines(run_tool("netstat", "-tulpn"), port)
    return {line.split()[-1] for line in lines if "LISTEN" in line}


def ss_processes(port: int) -> set[str]:
    """The ``users:`` column of ``ss -tlnp`` for ``port``, e.g.
    ``{'users:(("workflow-orches",pid=12345,fd=7))'}``."""
    lines = listening_lines(run_tool("ss", "-tlnp"), port)
    return {line.split()[-1] for line in lines}


def pgrep_full(pattern: str) -> set[int]:
    """The PIDs ``pgrep -f pattern`` prints."""
    return {int(pid) for pid in run_tool("pgrep", "-f", pattern).split()}
