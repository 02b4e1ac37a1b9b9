"""JSON responses, and JSON request bodies read as untrusted input.

``parse_json_body`` turns every way a body can be bad into a 4xx ``ProblemError`` that names
the problem (a media type that is not JSON is a 415 before the route runs, ``_content_types``):
400 (``invalid-body``) for a body
that is not UTF-8 JSON (syntax, ``NaN``/``Infinity``, a number out of range, nesting deeper than
``MAX_JSON_DEPTH``), and 422 (``unstorable-value``, with the JSON ``pointer`` and the
``reason``) for valid JSON that PostgreSQL cannot store (the NUL character, a lone surrogate).
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from quart import Response

from workflow_orchestrator.gateway._problems import ProblemError
from workflow_orchestrator.storage import MAX_JSON_DEPTH, Unstorable, check_depth, check_storable

__all__ = [
    "invalid_body",
    "json_response",
    "loads_strict",
    "parse_json_body",
    "unstorable_problem",
]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as ``application/json`` (datetimes and other values by ``str``)."""
    return Response(
        json.dumps(body, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def invalid_body(detail: str, **extensions: Any) -> ProblemError:
    """A 400 ``invalid-body`` problem."""
    return ProblemError(400, "invalid-body", "Invalid Request Body", detail, **extensions)


def unstorable_problem(exc: Unstorable, *, status: int | None = None) -> ProblemError:
    """The problem for a value ``storable_json``/``check_depth`` refused: 400 for nesting too
    deep (the body is not acceptable JSON here), 422 for a value that cannot be stored."""
    extensions: dict[str, Any] = {"reason": exc.reason}
    if exc.pointer:
        extensions["pointer"] = exc.pointer
    if exc.reason == "depth" or status == 400:
        return invalid_body(str(exc), **extensions)
    return ProblemError(
        status or 422, "unstorable-value", "Unstorable Value", str(exc), **extensions
    )


def _refuse_constant(name: str) -> NoReturn:
    raise _NotJson(f"{name} is not a JSON number; send a number, null or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"the number {text[:40]} is out of range; send it as a string")
    return value


class _NotJson(ValueError):
    pass


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` and numbers out of a float's range.

    Raises ``ValueError`` for anything that is not such JSON, ``RecursionError`` for nesting
    deeper than the parser goes.
    """
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def parse_json_body(raw: bytes, *, what: str = "the body") -> Any:
    """The JSON value of ``raw``, or a 4xx `ProblemError` saying what is wrong with it.

    ``what`` names the document in the messages (``the body``, ``the input``).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_body(
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start}); encode it as UTF-8"
        ) from None
    try:
        value = loads_strict(text)
    except _NotJson as exc:
        raise invalid_body(f"{what} is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise invalid_body(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise invalid_body(
            f"{what} nests deeper than {MAX_JSON_DEPTH} levels; flatten the data",
            reason="depth",
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise invalid_body(f"{what} is not acceptable JSON: {exc}") from None
    try:
        check_depth(value, what=what)
        check_storable(value, what=what)
    except Unstorable as exc:
        raise unstorable_problem(exc) from None
    return value
