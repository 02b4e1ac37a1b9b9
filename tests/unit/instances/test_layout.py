"""The instances part's structure: no import cycle between its modules (wherever an import
is written: module level, inside a function, under ``TYPE_CHECKING``), and nobody reaches
through the runtime to what it was built from."""

from __future__ import annotations

import ast
from pathlib import Path

import workflow_orchestrator

ROOT = Path(workflow_orchestrator.__file__).parent
INSTANCES = ROOT / "instances"


def imported_modules(path: Path) -> set[str]:
    """Every ``workflow_orchestrator`` module ``path`` imports, at any place in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("workflow_orchestrator.")}


def instances_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in INSTANCES.glob("*.py") if p.stem != "__init__"}
    prefix = "workflow_orchestrator.instances."
    return {
        name: {
            target.removeprefix(prefix).split(".")[0]
            for target in imported_modules(path)
            if target.startswith(prefix) and target.removeprefix(prefix).split(".")[0] in modules
        }
        - {name}
        for name, path in modules.items()
    }


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a cycle when there is one."""
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None


def test_instances_modules_have_no_cycle() -> None:
    """The actor, its effects and the runtime import one way: no module of instances/ is in
    an import cycle, counting function-local and TYPE_CHECKING imports."""
    graph = instances_graph()
    assert {"_actor", "_effects", "_runtime", "_ports", "_commit"} <= set(graph)
    assert cycle_in(graph) is None
    assert "_runtime" not in graph["_actor"] | graph["_effects"] | graph["_ports"]


def test_no_reach_through_the_runtime() -> None:
    """No package outside instances/ reads ``runtime.database``, ``.leases``, ``.catalog``,
    ``.writer`` or ``.timers``: the composition root (service.py, which hands the runtime's
    wake-up timers to the scheduler) gives each part those directly."""
    reached = []
    for path in ROOT.rglob("*.py"):
        if INSTANCES in path.parents or path == ROOT / "service.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"database", "leases", "catalog", "writer", "timers"}
                and isinstance(node.value, ast.Attribute | ast.Name)
                and (node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id)
                == "runtime"
            ):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno} runtime.{node.attr}")
    assert reached == []
