"""The cost bound of one event's correlation and filter expressions in the router.

The router evaluates, per event, the ``correlate.from`` expressions of every subscription shape
of its type and the ``with`` filters of every ``schedule.on`` starter. Each evaluation is bounded
on its own (a small input runs in-process only when proven cheap; anything else runs in the
sandbox under its CPU budget), but one event could still add those bounds up, shape after shape,
while every other event of the batch waits. A ``CorrelationBudget`` is made per event: its
evaluations share ``seconds`` of wall-clock time (``eventProcessing.correlationBudget``), an
evaluation that would run past it is cut off, and every later one fails at once. A failed
evaluation already has a meaning in routing (a ``from`` that fails leaves only the shape's
catch-all key, so waiting instances check the event themselves; a filter that fails does not
match), so a pathological event degrades to that, and the router moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from workflow_orchestrator.dsl import ExpressionEngine
from workflow_orchestrator.dsl.expressions import CompiledExpression, ExpressionError

__all__ = ["CORRELATION_BUDGET_SETTING", "CorrelationBudget"]

logger = logging.getLogger(__name__)

CORRELATION_BUDGET_SETTING = "eventProcessing.correlationBudget"


class CorrelationBudget:
    """Evaluates expressions for one event within ``seconds`` in all (from construction)."""

    def __init__(self, engine: ExpressionEngine, seconds: float, *, event: str = "") -> None:
        self._engine = engine
        self._seconds = seconds
        self._deadline = trio.current_time() + seconds
        self._event = event
        self.spent = False

    async def evaluate(
        self,
        source_or_compiled: str | CompiledExpression,
        data: Any,
        arguments: Mapping[str, Any],
    ) -> Any:
        """``ExpressionEngine.evaluate`` within what is left of the budget; raises
        ``ExpressionError`` naming the budget once it is spent."""
        source = (
            source_or_compiled if isinstance(source_or_compiled, str) else source_or_compiled.source
        )
        if not self.spent and trio.current_time() < self._deadline:
            with trio.move_on_at(self._deadline):
                return await self._engine.evaluate(source_or_compiled, data, arguments)
        if not self.spent:
            self.spent = True
            logger.warning(
                "event %s: its correlation and filter expressions took longer than %gs (%s); "
                "the rest count as not computable for this event",
                self._event,
                self._seconds,
                CORRELATION_BUDGET_SETTING,
            )
        raise ExpressionError(
            source,
            f"the event's correlation expressions used up their {self._seconds:g}s "
            f"({CORRELATION_BUDGET_SETTING}); simplify them or raise the setting",
        )
