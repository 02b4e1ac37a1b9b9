"""Only ``storage/`` talks to PostgreSQL: no other module imports asyncpg or holds SQL text.

Every import is checked (module level, function-local and ``TYPE_CHECKING`` ones alike), and
every string literal except docstrings (which may show SQL to users, such as the producer API of
the database event source). A statement is recognised by its shape (``SELECT ... FROM``,
``INSERT INTO``, ``UPDATE <table> SET``, ``DELETE FROM``) or by an asyncpg placeholder with a
cast (``$1::int[]``), in any case.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import workflow_orchestrator

PACKAGE = Path(workflow_orchestrator.__file__).parent
STORAGE = PACKAGE / "storage"

SQL = re.compile(
    r"\b(?:SELECT\b[\s\S]*?\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
    r"|\$[1-9][0-9]*::",
    re.IGNORECASE,
)


def violations(source: str) -> list[str]:
    """What in ``source`` only storage may do: ``line: what`` for each asyncpg import and each
    string literal (docstrings and other bare strings aside) that holds SQL."""
    tree = ast.parse(source)
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            modules = []
        found.extend(
            f"{node.lineno}: imports {module}"
            for module in modules
            if module == "asyncpg" or module.startswith("asyncpg.")
        )
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare:
            match = SQL.search(node.value)
            if match is not None:
                statement = " ".join(match.group(0).split())[:40]
                found.append(f"{node.lineno}: SQL in a string: {statement!r}")
    return found


def modules_outside_storage() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if STORAGE not in p.parents)


def test_no_module_outside_storage_imports_asyncpg_or_holds_sql() -> None:
    """Every asyncpg import and every SQL statement of the package lives under storage/."""
    modules = modules_outside_storage()
    assert len(modules) > 50  # the package was found, not an empty folder
    problems = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in modules
        if (found := violations(path.read_text(encoding="utf-8")))
    }
    assert problems == {}, "move these into a storage audience (storage.events, ...)"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncpg\n", ["1: imports asyncpg"]),
        (
            "def f():\n    from asyncpg.exceptions import PostgresError\n",
            ["2: imports asyncpg.exceptions"],
        ),
        ("X = 'SELECT count(*) FROM outbox'\n", ["1: SQL in a string: 'SELECT count(*) FROM'"]),
        ('X = """\nupdate events\nset a = 1"""\n', ["1: SQL in a string: 'update events set'"]),
        ("X = ('DELETE ' 'FROM outbox')\n", ["1: SQL in a string: 'DELETE FROM'"]),
        ("f(x, '$1::int[]')\n", ["1: SQL in a string: '$1::'"]),
        ('"""A docstring may show SELECT workflow_publish_event(...) FROM t."""\n', []),
        ("X = 'insert the event into the inbox, then delete it from the table'\n", []),
        ("X = '${ .orderId }'\n", []),
    ],
    ids=[
        "import",
        "function-local import",
        "select",
        "lower-case update",
        "implicit concatenation",
        "placeholder",
        "docstring",
        "prose",
        "jq",
    ],
)
def test_the_check_recognises_imports_and_statements(source: str, expected: list[str]) -> None:
    """The check finds asyncpg imports (also function-local) and SQL, and leaves prose alone."""
    assert violations(source) == expected
