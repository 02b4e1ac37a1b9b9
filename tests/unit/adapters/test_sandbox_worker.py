"""The sandbox worker script: its frame protocol, its exit on EOF, and its standalone imports."""

from __future__ import annotations

import ast
import json
import struct
import subprocess
import sys
from pathlib import Path

import workflow_orchestrator.adapters

WORKER = Path(workflow_orchestrator.adapters.__file__).with_name("_sandbox_worker.py")


def _frame(program: str, value: object) -> bytes:
    encoded = program.encode()
    body = struct.pack(">I", len(encoded)) + encoded + json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


def _replies(stdout: bytes) -> list[tuple[bytes, bytes]]:
    replies = []
    while stdout:
        (size,) = struct.unpack(">I", stdout[:4])
        reply, stdout = stdout[4 : 4 + size], stdout[4 + size :]
        replies.append((reply[:1], reply[1:]))
    return replies


def test_worker_answers_each_frame_and_exits_when_stdin_closes() -> None:
    """Outputs, a jq error and an oversized result come back in order; EOF ends it cleanly."""
    requests = (
        _frame(".[0] | .a, .b", [{"a": 1, "b": [2]}])
        + _frame('.[0] | error("boom")', [None])
        + _frame('.[0] | "x" * 50', [None])
    )
    completed = subprocess.run(
        [sys.executable, "-s", "-P", str(WORKER), "2.0", "20", "0"],
        input=requests,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert _replies(completed.stdout) == [
        (b"o", b"1\n[2]"),
        (b"e", b"boom"),
        (b"s", b"52"),
    ]


def test_worker_imports_only_the_standard_library_and_jq() -> None:
    """The script never imports the project, so it starts fast and runs from a wheel."""
    tree = ast.parse(WORKER.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names) | {"jq"}, imported
