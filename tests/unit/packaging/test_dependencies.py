"""Every library the package imports is declared in setup.cfg, so a clean install has it."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]
PACKAGE = "workflow_orchestrator"


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_libraries() -> set[str]:
    """Top-level modules outside the standard library that the package imports anywhere."""
    modules: set[str] = set()
    for path in (REPOSITORY / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != PACKAGE}


def declared_distributions() -> set[str]:
    """The distribution names of setup.cfg's install_requires."""
    parser = configparser.ConfigParser()
    parser.read(REPOSITORY / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    names = (re.match(r"[A-Za-z0-9._-]+", line.strip()) for line in lines)
    return {canonical(name.group()) for name in names if name}


def test_every_imported_library_is_declared() -> None:
    """A library imported by the package is a direct dependency, not one by chance."""
    owners = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    undeclared = {
        module: sorted(owners.get(module, [module]))
        for module in imported_libraries()
        if not declared & {canonical(d) for d in owners.get(module, [module])}
    }
    assert not undeclared, f"imported but missing from setup.cfg install_requires: {undeclared}"
