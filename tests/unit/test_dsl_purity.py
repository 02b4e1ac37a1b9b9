"""``dsl`` does no I/O and depends on nothing of ours: every module's imports, read with ast.

Function-local and ``TYPE_CHECKING`` imports count too (the whole tree is walked). Allowed from
the project: ``workflow_orchestrator.dsl`` itself and ``workflow_orchestrator.errors`` (the root
error). Refused: I/O libraries (network, processes, the asyncio world, database and broker
clients) and the I/O entry points of ``os`` and ``trio``; the adapters that perform the DSL's
effects live in ``workflow_orchestrator.adapters``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import workflow_orchestrator.dsl

DSL = Path(workflow_orchestrator.dsl.__file__).parent
OURS = "workflow_orchestrator"
ALLOWED_OURS = ("workflow_orchestrator.dsl", "workflow_orchestrator.errors")
IO_MODULES = frozenset(
    {
        "aio_pika",
        "aiohttp",
        "aiormq",
        "anyio",
        "asyncio",
        "asyncpg",
        "concurrent.futures",
        "ftplib",
        "h11",
        "h2",
        "http.client",
        "http.server",
        "httpcore",
        "httpx",
        "hypercorn",
        "multiprocessing",
        "pamqp",
        "psycopg",
        "psycopg2",
        "pty",
        "quart",
        "quart_trio",
        "requests",
        "resource",
        "select",
        "selectors",
        "signal",
        "smtplib",
        "socket",
        "socketserver",
        "ssl",
        "subprocess",
        "trio_asyncio",
        "urllib.request",
        "urllib3",
        "xmlrpc",
    }
)
IO_CALLS = frozenset(
    {
        *(
            f"os.{name}"
            for name in [
                "system",
                "popen",
                "fork",
                "forkpty",
                "kill",
                "killpg",
                "posix_spawn",
                "posix_spawnp",
                "startfile",
                "execl",
                "execle",
                "execlp",
                "execlpe",
                "execv",
                "execve",
                "execvp",
                "execvpe",
                "spawnl",
                "spawnle",
                "spawnlp",
                "spawnlpe",
                "spawnv",
                "spawnve",
                "spawnvp",
                "spawnvpe",
            ]
        ),
        "trio.run_process",
        "trio.lowlevel.open_process",
        "trio.open_tcp_stream",
        "trio.open_ssl_over_tcp_stream",
        "trio.open_unix_socket",
        "trio.open_tcp_listeners",
        "trio.open_ssl_over_tcp_listeners",
        "trio.serve_tcp",
        "trio.serve_ssl_over_tcp",
        "trio.serve_listeners",
        "trio.socket",
        "trio.open_file",
        "trio.wrap_file",
        "trio.Path",
    }
)


def _refused(name: str) -> str | None:
    """Why importing or using the dotted ``name`` breaks the rule, or None."""
    if name == OURS or name.startswith(OURS + "."):
        if any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED_OURS):
            return None
        return "a package of ours other than dsl and errors"
    for module in IO_MODULES:
        if name == module or name.startswith(module + "."):
            return f"the I/O library {module}"
    for call in IO_CALLS:
        if name == call or name.startswith(call + "."):
            return f"the I/O entry point {call}"
    return None


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def violations(source: str, package: str) -> list[str]:
    """Every refused import or I/O entry point in ``source`` (a module of ``package``)."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> the dotted name it stands for
    found: list[str] = []

    def check(name: str, line: int) -> None:
        reason = _refused(name)
        if reason is not None:
            found.append(f"line {line}: {name} ({reason})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, node.lineno)
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, package)
            if module != OURS:  # ``from workflow_orchestrator import x`` is judged by x
                check(module, node.lineno)
            for alias in node.names:
                check(f"{module}.{alias.name}", node.lineno)
                aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = _dotted(node)
            # A use of a refused import is reported once, at the import.
            if parts is not None and parts[0] in aliases and not _refused(aliases[parts[0]]):
                check(".".join([aliases[parts[0]], *parts[1:]]), node.lineno)
    return list(dict.fromkeys(found))


def _modules() -> list[Path]:
    return sorted(DSL.rglob("*.py"))


def _package(path: Path) -> str:
    """The package a module's relative imports start from (its folder, as a dotted name)."""
    return ".".join(path.relative_to(DSL.parent.parent).parent.parts)


def test_every_dsl_module_is_checked() -> None:
    """The walk finds the whole package (an empty glob would make the next test vacuous)."""
    names = {path.relative_to(DSL).as_posix() for path in _modules()}
    assert len(names) > 40
    assert {"__init__.py", "expressions/_engine.py", "runtime/_interpreter.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.relative_to(DSL).as_posix())
def test_dsl_module_imports_no_io_and_nothing_of_ours(path: Path) -> None:
    """A dsl module imports only dsl, errors and libraries that do no I/O."""
    assert violations(path.read_text(encoding="utf-8"), _package(path)) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import subprocess", "line 1: subprocess (the I/O library subprocess)"),
        ("import asyncio.events", "line 1: asyncio.events (the I/O library asyncio)"),
        ("from httpx import AsyncClient", "line 1: httpx (the I/O library httpx)"),
        (
            "def f():\n    from multiprocessing import Pool\n",
            "line 2: multiprocessing (the I/O library multiprocessing)",
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncpg\n",
            "line 3: asyncpg (the I/O library asyncpg)",
        ),
        (
            "from workflow_orchestrator import storage",
            "line 1: workflow_orchestrator.storage (a package of ours other than dsl and errors)",
        ),
        (
            "from ... import storage",
            "line 1: workflow_orchestrator.storage (a package of ours other than dsl and errors)",
        ),
        (
            "import workflow_orchestrator.adapters as a",
            "line 1: workflow_orchestrator.adapters (a package of ours other than dsl and errors)",
        ),
        (
            "import trio\nasync def f():\n    await trio.run_process(['ls'])\n",
            "line 3: trio.run_process (the I/O entry point trio.run_process)",
        ),
        (
            "import trio as t\nasync def f():\n    await t.lowlevel.open_process(['ls'])\n",
            "line 3: trio.lowlevel.open_process (the I/O entry point trio.lowlevel.open_process)",
        ),
        (
            "from trio import open_tcp_stream",
            "line 1: trio.open_tcp_stream (the I/O entry point trio.open_tcp_stream)",
        ),
        ("import os\nos.system('ls')\n", "line 2: os.system (the I/O entry point os.system)"),
        ("from os import execv", "line 1: os.execv (the I/O entry point os.execv)"),
    ],
)
def test_the_check_finds_io(source: str, expected: str) -> None:
    """The checker reports I/O libraries, our other packages and I/O calls, wherever written."""
    assert expected in violations(source, "workflow_orchestrator.dsl.runtime")


def test_the_check_allows_pure_code() -> None:
    """dsl, errors, relative imports inside dsl and pure libraries pass."""
    source = (
        "import re, json, trio\n"
        "from urllib.parse import quote\n"
        "from workflow_orchestrator.errors import OrchestratorError\n"
        "from workflow_orchestrator import errors\n"
        "from workflow_orchestrator.dsl.errors import Problem\n"
        "from ..expressions import ExpressionEngine\n"
        "from ._state import ExecutionState\n"
        "async def f():\n    await trio.sleep(0)\n    os = {}\n    os.get('system')\n"
    )
    assert violations(source, "workflow_orchestrator.dsl.runtime") == []
