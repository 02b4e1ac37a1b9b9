"""Configuration errors: every problem found, each naming where the value came from."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["ConfigError", "ConfigProblem"]


@attrs.frozen(kw_only=True)
class ConfigProblem:
    """One invalid setting.

    ``source`` is the file path, ``env VAR`` or ``--option`` the value came from; ``key`` is the
    dotted key path (``server.port``); ``message`` says what is wrong and what is expected.
    """

    source: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigError(OrchestratorError, ValueError):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid configuration ({count} {noun}):\n{lines}")
