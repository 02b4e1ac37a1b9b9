"""The DSL's scalar forms: runtime expressions, URIs, names, versions, durations.

Each regular expression is the schema's, written for Python's ``re`` with the schema
validator's semantics (see ``_nodes``): ``\\Z`` for ``$``, ``WHITESPACE`` for ``\\s``.
``TASK`` and ``TASK_LIST`` live here (``TASK`` is bound in ``_tasks``) because the parts of
the grammar that hold task lists (catch, listen's foreach, extensions) are defined before it.
"""

from __future__ import annotations

import re

from ._nodes import (
    WHITESPACE,
    AnyValue,
    ByType,
    Entry,
    Forward,
    Integer,
    ListOf,
    MapOf,
    Record,
    Text,
    show,
    text_matching,
)

_EXPRESSION = rf"[{WHITESPACE}]*\$\{{.+\}}[{WHITESPACE}]*\Z"
_URI = r"[A-Za-z][A-Za-z0-9+\-.]*://"
_SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\Z"
_ISO_DURATION = (
    r"P(?!\Z)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?\Z"
)

EXPRESSION_PATTERN = re.compile(_EXPRESSION)
NAME_PATTERN = re.compile(_NAME)

ANY = AnyValue()
TEXT = Text()
MAPPING = Record(noun="a mapping", closed=False)
TEXT_LIST = ListOf(TEXT, noun="a list of strings")
TEXT_MAP = MapOf(TEXT, noun="a mapping of names to strings")

EXPRESSION = text_matching(
    "a runtime expression",
    _EXPRESSION,
    lambda value: (
        f"{show(value)} is not a runtime expression; write it as '${{ ... }}' on one line"
    ),
)
URI = text_matching(
    "an absolute URI",
    _URI,
    lambda value: (
        f"{show(value)} is not an absolute URI; write it with its scheme, such as "
        "https://example.com/path"
    ),
)
URI_OR_EXPRESSION = text_matching(
    "an absolute URI or a runtime expression",
    f"(?:{_URI}|{_EXPRESSION})",
    lambda value: (
        f"{show(value)} is neither an absolute URI (such as "
        "https://example.com/path) nor a runtime expression ('${ ... }'); write one of them"
    ),
)
LITERAL = Text(
    noun="a literal string",
    forbidden=EXPRESSION_PATTERN,
    explain=lambda value: (
        f"{show(value)} is a runtime expression, and the DSL 1.0.3 schema "
        "takes only a literal value here; write the value itself"
    ),
)
SEMVER = text_matching(
    "a semantic version such as 1.0.0",
    _SEMVER,
    lambda value: f"{show(value)} is not a semantic version such as 1.0.0",
)


def _explain_name(value: str) -> str:
    proposal = re.sub(r"[^a-zA-Z0-9-]+", "-", value).strip("-")[:63].strip("-")
    hint = f", such as {proposal!r}" if NAME_PATTERN.match(proposal) else ""
    return (
        f"{show(value)} is not a valid name: use 1 to 63 letters, digits and '-', starting "
        f"and ending with a letter or digit{hint}"
    )


NAME = text_matching("a name of letters, digits and '-'", _NAME, _explain_name)
SECRET_NAME = Text(noun="a name", min_length=1)

_INLINE_DURATION = Record(
    noun="an inline duration",
    fields={unit: Integer() for unit in ("days", "hours", "minutes", "seconds", "milliseconds")},
    min_keys=1,
)
DURATION = ByType(
    noun="a duration (an ISO 8601 string such as PT30S, or a mapping such as {seconds: 30})",
    mapping=_INLINE_DURATION,
    string=text_matching(
        "a duration",
        f"(?:{_ISO_DURATION}|{_EXPRESSION})",
        lambda value: (
            f"{show(value)} is not a duration; write ISO 8601 such as PT30S or "
            "P1DT2H, a mapping such as {minutes: 1}, or a runtime expression"
        ),
    ),
)

TASK = Forward(noun="a task")
TASK_LIST = ListOf(
    Entry(TASK, noun="a mapping of one task name to its task"),
    noun="a list of tasks (each item a mapping of one task name to its task)",
)
