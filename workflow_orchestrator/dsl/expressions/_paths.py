"""The fast path: plain path expressions evaluated without jq.

``.order.id``, ``.items[0]``, ``.["a key"]``, ``."a key"``, ``$input.x``, ``$context`` and ``.``
are read straight from the Python values with jq's semantics (a missing key or index gives
``null``, indexing ``null`` gives ``null``, a negative index counts from the end). Anything jq
would raise an error for (indexing a number, a string key on an array) is reported as
``PathMiss`` so the caller re-runs the program in jq and gets jq's exact message. The output of a
path is a part of the input, so it can never run away.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r'"(?:[^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_SEGMENT = re.compile(
    rf"\s*(?:\.(?P<field>{_IDENT})|\.?\[\s*(?P<key>{_STRING})\s*\]|\.(?P<quoted>{_STRING})"
    rf"|\.?\[\s*(?P<index>-?[0-9]+)\s*\])"
)
_HEAD = re.compile(rf"\s*(?:\$(?P<var>{_IDENT}))?")
_KEYWORDS = frozenset(
    {
        "if", "then", "elif", "else", "end", "as", "def", "reduce", "foreach", "try", "catch",
        "label", "import", "include", "and", "or", "not", "__loc__",
    }
)  # fmt: skip

Segment = str | int


@attrs.frozen(kw_only=True)
class PlainPath:
    """A path from ``.`` (``variable`` is None) or from an argument such as ``$input``."""

    variable: str | None
    segments: tuple[Segment, ...]


class PathMiss(Exception):
    """The path does not apply to the value in the way jq would read it; let jq decide."""


def parse_plain_path(program: str, variables: frozenset[str]) -> PlainPath | None:
    """Return the path if ``program`` is a plain path over ``.`` or one of ``variables``."""
    head = _HEAD.match(program)
    assert head is not None  # the pattern matches the empty string
    variable = head.group("var")
    if variable is not None and variable not in variables:
        return None
    position = head.end()
    segments: list[Segment] = []
    rest = program[position:]
    if variable is None:
        stripped = rest.strip()
        if stripped == ".":
            return PlainPath(variable=None, segments=())
        if not stripped.startswith("."):
            return None
    while position < len(program):
        if not program[position:].strip():
            break
        match = _SEGMENT.match(program, position)
        if match is None:
            return None
        if variable is None and not segments and program[match.start() :].lstrip()[0] == "[":
            return None  # "[0]" alone is an array literal, not a path
        if match.group("field") is not None:
            if match.group("field") in _KEYWORDS:
                return None
            segments.append(match.group("field"))
        elif match.group("key") is not None:
            segments.append(json.loads(match.group("key")))
        elif match.group("quoted") is not None:
            segments.append(json.loads(match.group("quoted")))
        else:
            segments.append(int(match.group("index")))
        position = match.end()
    if variable is None and not segments:
        return None
    return PlainPath(variable=variable, segments=tuple(segments))


def read_plain_path(path: PlainPath, data: Any, arguments: Mapping[str, Any]) -> Any:
    """Read ``path``; raise ``PathMiss`` where jq would raise an error."""
    value = data if path.variable is None else arguments.get(path.variable)
    for segment in path.segments:
        if value is None:
            continue
        if isinstance(segment, str):
            if not isinstance(value, Mapping):
                raise PathMiss
            value = value.get(segment)
        else:
            if not isinstance(value, list | tuple):
                raise PathMiss
            index = segment + len(value) if segment < 0 else segment
            value = value[index] if 0 <= index < len(value) else None
    return value
