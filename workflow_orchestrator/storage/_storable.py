"""What PostgreSQL can store as ``jsonb``, checked before a value joins a batch.

A value that ``jsonb`` refuses (the NUL character, a lone UTF-16 surrogate, NaN or an
infinity), that ``json`` cannot encode (nesting too deep for it, a non-JSON type)
or that is over a size limit would fail the whole statement it is part of, and with it every
other row of a group commit. ``storable_json`` encodes a value once and tells which of these
holds, naming where (a JSON pointer), so the caller refuses that one value alone.

The fast path is one C-level ``json.dumps``; the walk that finds the pointer runs only when the
encoded text shows a problem.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "MAX_JSON_DEPTH",
    "Unstorable",
    "check_depth",
    "check_json_text",
    "check_storable",
    "check_text",
    "storable_json",
]

# Parsed input deeper than this is refused (`check_depth`): deeper than any sane document, and
# well inside Python's recursion limit, which json, copy and the expression engine all use.
MAX_JSON_DEPTH = 256

_LONE_SURROGATE = re.compile(
    r"[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)
# In JSON text (json.dumps escapes them): NUL, and surrogates (lone ones are refused).
_SUSPECT = re.compile(r"\\u(?:0000|d[89a-f])")
# In JSON text someone else encoded: also the NaN and Infinity that json.dumps may write.
_SUSPECT_ENCODED = re.compile(r"\\u(?:0000|d[89a-f])|NaN|Infinity")
# In plain text (a text column, not JSON): NUL, and any surrogate (UTF-8 cannot encode one).
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# ``json.dumps(value, allow_nan=False, separators=(",", ":"))`` without building an encoder per
# call (the same output).
_STORABLE = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class Unstorable(OrchestratorError, ValueError):
    """A value PostgreSQL (or JSON) cannot store; ``reason`` is one of ``nul``, ``surrogate``,
    ``non-finite``, ``depth``, ``type`` or ``size``, ``pointer`` where it is (JSON pointer)."""

    def __init__(self, what: str, reason: str, detail: str, pointer: str = "") -> None:
        self.what = what
        self.reason = reason
        self.pointer = pointer
        where = f" at {pointer}" if pointer else ""
        super().__init__(f"{what} {detail}{where}")


def storable_json(value: Any, *, what: str = "the value", max_bytes: int | None = None) -> str:
    """The compact JSON text of ``value``; raises `Unstorable` (naming ``what`` and where)
    when PostgreSQL cannot store it or the text is longer than ``max_bytes`` characters."""
    try:
        text = _STORABLE.encode(value)
    except (ValueError, TypeError, RecursionError):
        raise _locate(value, what) or Unstorable(what, "type", "is not JSON data") from None
    if _SUSPECT.search(text) is not None:
        problem = _locate(value, what)
        if problem is not None:
            raise problem
    if max_bytes is not None and len(text) > max_bytes:
        raise Unstorable(
            what,
            "size",
            f"is {len(text):,} bytes of JSON, over the limit of {max_bytes:,} bytes",
        )
    return text


def check_json_text(text: str, *, what: str = "the JSON text") -> None:
    """Raise `Unstorable` when JSON ``text`` encoded elsewhere is not JSON, or holds what
    ``storable_json`` refuses; it is parsed only when a scan of the text finds a suspect."""
    if _SUSPECT_ENCODED.search(text) is None:
        return
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Unstorable(what, "type", "is not JSON text") from None
    storable_json(value, what=what)


def check_text(text: str, *, what: str = "the text") -> None:
    """Raise `Unstorable` when plain ``text`` (stored as text, not JSON) holds the NUL character
    or a surrogate, which PostgreSQL (UTF-8) cannot store."""
    if text.isascii() and "\x00" not in text:  # the common case, without the regex
        return
    found = _BAD_TEXT.search(text)
    if found is None:
        return
    reason, detail = _string_problem(found.group()) or ("surrogate", "holds a surrogate")
    raise Unstorable(what, reason, detail)


def check_storable(value: Any, *, what: str = "the value", max_bytes: int | None = None) -> None:
    """Raise `Unstorable` when ``storable_json`` would."""
    storable_json(value, what=what, max_bytes=max_bytes)


def check_depth(value: Any, *, what: str = "the value", limit: int = MAX_JSON_DEPTH) -> None:
    """Raise `Unstorable` (``depth``) when ``value`` nests deeper than ``limit`` levels (for
    parsed input, checked once; ``storable_json`` itself only refuses what JSON cannot encode).
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, pointer, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = ((f"{pointer}/{_escape(str(k))}", v) for k, v in item.items())
        elif isinstance(item, list):
            children = ((f"{pointer}/{i}", v) for i, v in enumerate(item))
        else:
            continue
        if depth > limit:
            raise Unstorable(
                what, "depth", f"nests deeper than {limit} levels; flatten the data", pointer
            )
        stack.extend((v, p, depth + 1) for p, v in children)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _locate(value: Any, what: str) -> Unstorable | None:
    """The first `Unstorable` problem in ``value`` (a walk without recursion), or None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, pointer, depth = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem is not None:
                return Unstorable(what, *problem, pointer=pointer)
            continue
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return Unstorable(
                    what,
                    "non-finite",
                    f"holds {item!r}, which JSON does not allow; use a number, null or a string",
                    pointer,
                )
            continue
        if depth >= MAX_JSON_DEPTH:
            return Unstorable(
                what,
                "depth",
                f"nests deeper than {MAX_JSON_DEPTH} levels; flatten the data",
                pointer,
            )
        if isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str):
                    return Unstorable(
                        what,
                        "type",
                        f"has the object key {key!r}, which is not a string",
                        pointer,
                    )
                key_problem = _string_problem(key)
                if key_problem is not None:
                    return Unstorable(what, *key_problem, pointer=f"{pointer}/{_escape(key)}")
                stack.append((child, f"{pointer}/{_escape(key)}", depth + 1))
            continue
        if isinstance(item, list | tuple):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], f"{pointer}/{index}", depth + 1))
            continue
        return Unstorable(
            what,
            "type",
            f"holds a {type(item).__name__}, which is not JSON data",
            pointer,
        )
    return None


def _string_problem(text: str) -> tuple[str, str] | None:
    if "\x00" in text:
        return (
            "nul",
            "holds the NUL character (\\u0000), which PostgreSQL cannot store; remove it or "
            "encode the value (for example base64)",
        )
    if _LONE_SURROGATE.search(text) is not None:
        return (
            "surrogate",
            "holds a lone UTF-16 surrogate, which is not valid Unicode; send valid UTF-8 text",
        )
    return None
