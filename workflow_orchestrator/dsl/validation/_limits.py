"""Limits of one validation: how long it may take and how many expressions a definition has.

A ``Deadline`` is checked by the loader (every few thousand YAML nodes) and the semantic checker
(every expression), so a definition that would take too long to validate stops with one
problem (rule ``limit``) that names the limit and the setting raising it, instead of holding
a worker for as long as it takes.
"""

from __future__ import annotations

import time

import attrs

from ._problems import DefinitionProblem, InvalidDefinition

__all__ = ["MAX_EXPRESSIONS", "Deadline", "limit_problem"]

MAX_EXPRESSIONS = 2000


def limit_problem(message: str, pointer: str = "") -> InvalidDefinition:
    """An ``InvalidDefinition`` with the one problem of a limit (rule ``limit``)."""
    return InvalidDefinition([DefinitionProblem(pointer=pointer, message=message, rule="limit")])


@attrs.frozen(kw_only=True)
class Deadline:
    """The monotonic time (``time.monotonic``) a validation must end by, ``seconds`` after it
    started; ``setting`` names the setting that raises it."""

    at: float
    seconds: float
    setting: str = "definitions.validationTimeout"
    doing: str = "validating the definition"

    @classmethod
    def after(
        cls,
        seconds: float,
        setting: str = "definitions.validationTimeout",
        doing: str = "validating the definition",
    ) -> Deadline:
        """The deadline ``seconds`` from now; ``doing`` says what it bounds, in messages."""
        return cls(at=time.monotonic() + seconds, seconds=seconds, setting=setting, doing=doing)

    def check(self) -> None:
        """Raise ``InvalidDefinition`` (rule ``limit``) once the deadline has passed."""
        if time.monotonic() > self.at:
            raise self.expired()

    def expired(self) -> InvalidDefinition:
        """The error of a validation that did not end by the deadline."""
        return limit_problem(
            f"{self.doing} takes longer than {self.seconds:g}s, the limit set by "
            f"{self.setting}; make it smaller (for a definition: fewer tasks and "
            "expressions, or subflows) or raise the setting"
        )
