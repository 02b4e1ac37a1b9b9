"""The sandbox port: what the engine needs to run a program that is not proven cheap.

The engine decides *whether* a program needs the sandbox (its tier, see ``_compiled``); an
``ExpressionSandbox`` decides *how* it is contained. The implementation the service uses runs
jq in killable worker processes under a CPU, memory and output budget
(``workflow_orchestrator.adapters.SandboxPool``); it is handed to ``ExpressionEngine`` by whoever
builds the engine, so this package starts no process and imports no process library.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._compiled import CompiledExpression


class ExpressionSandbox(Protocol):
    """Evaluates compiled programs out of harm's way; safe to share between Trio tasks.

    ``evaluate`` runs ``compiled.wrapped`` over ``value`` (the JSON input built by the engine)
    and returns jq's outputs in order. ``owner`` names who the evaluation is for (a definition,
    ``""`` when nobody in particular): a sandbox serves waiting owners in turn. It raises
    ``ExpressionError`` when the program fails on this data, when ``value`` is not JSON, or
    when the evaluation blows its budget; and ``RuntimeError`` once the sandbox is closed. A
    cancelled caller leaves the sandbox usable.
    """

    async def evaluate(
        self, compiled: CompiledExpression, value: Any, *, owner: str = ""
    ) -> list[Any]:
        """jq's outputs of ``compiled`` over ``value``; see the class docstring."""
        ...
