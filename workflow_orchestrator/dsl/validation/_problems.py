"""Definition problems and the error that carries them."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from workflow_orchestrator.errors import OrchestratorError


@attrs.frozen(kw_only=True)
class DefinitionProblem:
    """One problem of a definition.

    ``pointer`` is the JSON pointer of the offending value (``/do/2/charge/try/0``; ``""`` is
    the whole document), ``message`` a plain sentence saying what to change, ``rule`` the schema
    keyword (``required``, ``enum``, ...) or semantic rule (``then-target``, ...) it breaks.
    """

    pointer: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message} ({self.rule})"


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer of a path (``["do", 0, "a/b"]`` -> ``/do/0/a~1b``)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class InvalidDefinition(OrchestratorError, ValueError):
    """A definition has problems; ``problems`` lists all of them, in document order."""

    def __init__(self, problems: Iterable[DefinitionProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"the workflow definition is invalid: {first}{more}")

    def __reduce__(self) -> tuple[type[InvalidDefinition], tuple[list[DefinitionProblem]]]:
        return (type(self), (self.problems,))
