"""The process launcher on its own: orders, limits, exit status and the descendants it kills."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

LAUNCHER = (
    Path(__file__).resolve().parents[3]
    / "workflow_orchestrator"
    / "adapters"
    / "_process_launcher.py"
)


def _orders(argv: list[str], tmp_path: Path, **changes: Any) -> bytes:
    orders = {
        "argv": argv,
        "env": {"PATH": "/usr/bin:/bin"},
        "cwd": str(tmp_path),
        "limits": {},
        "deadline": 30,
        **changes,
    }
    encoded = json.dumps(orders).encode()
    return struct.pack(">I", len(encoded)) + encoded


@contextmanager
def _launched(stdin: bytes) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A running launcher (its lifeline's write end is the second value, open)."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(LAUNCHER), str(read_end)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={},
        pass_fds=(read_end,),
        start_new_session=True,
    )
    os.close(read_end)
    try:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
        yield process, write_end
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()
        with suppress(OSError):
            os.close(write_end)  # unless the test closed it


def _finish(process: subprocess.Popen[bytes]) -> tuple[str, str]:
    """What the launcher wrote (small outputs: read one after the other) once it ended."""
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.wait(timeout=20)
    return out.decode(), err.decode()


def _launch(argv: list[str], tmp_path: Path, stdin: bytes = b"", **changes: Any) -> Any:
    with _launched(_orders(argv, tmp_path, **changes) + stdin) as (process, _):
        out, err = _finish(process)
    return process.returncode, out, err


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not reaped yet has ended too)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def test_the_process_gets_its_argv_environment_folder_and_stdin(tmp_path: Path) -> None:
    """argv, exactly the ordered environment, the folder and the rest of stdin reach the
    process; the launcher ends with its exit code."""
    code, out, _ = _launch(
        ["/bin/sh", "-c", 'read x; echo "$0 $1 $x"; pwd; env | sort; exit 3', "sh", "one"],
        tmp_path,
        stdin=b"two\n",
        env={"PATH": "/usr/bin:/bin", "ONLY": "this"},
    )
    assert code == 3
    lines = out.splitlines()
    assert lines[:2] == ["sh one two", str(tmp_path)]
    assert {line.split("=")[0] for line in lines[2:]} - {"PWD", "SHLVL", "_"} == {"PATH", "ONLY"}


def test_resource_limits_apply_to_the_process(tmp_path: Path) -> None:
    """Each ordered limit is the process's soft and hard limit (CPU: hard one second later),
    and no core file is written."""
    _, out, _ = _launch(
        ["/bin/cat", "/proc/self/limits"],
        tmp_path,
        limits={"cpu": 7, "data": 100 << 20, "processes": 50, "files": 64, "file_size": 1 << 20},
    )
    rows = {line[:26].strip(): line[26:].split()[:2] for line in out.splitlines()[1:]}
    assert rows["Max cpu time"] == ["7", "8"]
    assert rows["Max data size"] == [str(100 << 20)] * 2
    assert rows["Max processes"] == ["50", "50"]
    assert rows["Max open files"] == ["64", "64"]
    assert rows["Max file size"] == [str(1 << 20)] * 2
    assert rows["Max core file size"] == ["0", "0"]


def test_the_launcher_ends_by_the_signal_that_ended_the_process(tmp_path: Path) -> None:
    """A process killed by a signal makes the launcher end by the same signal."""
    code, _, _ = _launch(["/bin/sh", "-c", "kill -SEGV $$"], tmp_path)
    assert code == -signal.SIGSEGV


def test_a_program_that_cannot_run_exits_127_with_the_reason(tmp_path: Path) -> None:
    """execve failing is exit code 127 and a line on stderr, as in a shell."""
    code, _, err = _launch([str(tmp_path / "missing")], tmp_path)
    assert code == 127
    assert err == f"cannot run {tmp_path / 'missing'}: No such file or directory\n"


def test_descendants_left_behind_are_killed_even_outside_the_group(tmp_path: Path) -> None:
    """When the process ends, background children, also one that called setsid, are killed
    (the pipes then end at once)."""
    code, out, _ = _launch(
        ["/bin/sh", "-c", "sleep 60 & echo $!; setsid sleep 60 & echo $!; exit 0"], tmp_path
    )
    assert code == 0
    pids = [int(line) for line in out.split()]
    assert len(pids) == 2
    assert all(_gone(pid) for pid in pids)


@pytest.mark.parametrize("stop", ["sigterm", "lifeline", "deadline"])
def test_the_tree_is_killed_on_sigterm_lost_lifeline_or_deadline(tmp_path: Path, stop: str) -> None:
    """SIGTERM (the service stops the task), the end of the lifeline (the service died) and
    the launcher's own deadline each kill the whole tree; the launcher then ends by SIGKILL."""
    deadline = 0.2 if stop == "deadline" else 30
    command = "sleep 60 & echo $!; setsid sleep 60 & echo $!; echo $$; sleep 60"
    with _launched(_orders(["/bin/sh", "-c", command], tmp_path, deadline=deadline)) as (
        process,
        lifeline,
    ):
        assert process.stdout is not None
        pids = [int(process.stdout.readline()) for _ in range(3)]
        if stop == "sigterm":
            process.send_signal(signal.SIGTERM)
        elif stop == "lifeline":
            os.close(lifeline)
        assert process.wait(timeout=20) == -signal.SIGKILL
    assert all(_gone(pid) for pid in pids)


def test_no_orders_is_exit_126(tmp_path: Path) -> None:
    """A launcher whose stdin ends before its orders says so and exits 126."""
    with _launched(b"\x00\x00") as (process, _):
        _, err = _finish(process)
    assert process.returncode == 126
    assert err.startswith("the process launcher got no valid orders")
