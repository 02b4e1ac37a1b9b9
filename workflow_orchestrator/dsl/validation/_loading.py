"""Loading definitions from YAML or JSON text with YAML 1.2 scalars.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, ``1:30`` is 90 and
``2024-01-01`` is a date; the DSL's ``schedule.on`` key would turn into ``True``. The loader
here resolves only the YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal,
``0o``/``0x`` integers and floats; everything else stays a string. JSON is a subset of YAML 1.2
and loads the same way.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from ._problems import DefinitionProblem, InvalidDefinition

MAX_VALUES = 200_000
MAX_DEPTH = 200

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml


class _Yaml12Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader (libyaml's when available) with the YAML 1.2 core schema's scalar types."""


_Yaml12Loader.yaml_implicit_resolvers = {}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])
_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _TooDeep(Exception):
    pass


class _NotJson(Exception):
    """A value (or a mapping's key) that JSON cannot hold; ``parent`` holds it."""

    def __init__(self, parent: Any, key: Any, reason: str) -> None:
        super().__init__(reason)
        self.parent = parent
        self.key = key
        self.reason = reason


_JSON_SCALARS = (str, int, bool, type(None))


def _expanded_size(document: Any, limit: int) -> int:
    """Number of values ``document`` has as a tree (aliases counted each time), up to ``limit``.

    Memoised by object identity, so a "billion laughs" of nested aliases costs linear time.
    Raises ``_TooDeep`` past ``MAX_DEPTH`` levels of nesting and ``_NotJson`` for what JSON
    cannot hold: keys that are not strings (``1:``, ``null:``), ``.nan``/``.inf``, and values
    of explicit YAML tags such as ``!!binary``, ``!!set`` or ``!!timestamp``.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise _TooDeep
        total = 1
        if isinstance(node, dict):
            for key, item in node.items():
                if key.__class__ is not str:
                    raise _NotJson(node, key, "")
                total += _child(node, key, item, depth)
                if total > limit:
                    break
        elif isinstance(node, list):
            for index, item in enumerate(node):
                total += _child(node, index, item, depth)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    def _child(parent: Any, key: Any, item: Any, depth: int) -> int:
        if isinstance(item, dict | list):
            return size(item, depth + 1)
        if item.__class__ is float:
            if not math.isfinite(item):
                raise _NotJson(parent, key, f"{item} is not a JSON number; write a number")
        elif not isinstance(item, _JSON_SCALARS):
            raise _NotJson(
                parent,
                key,
                f"a YAML {type(item).__name__} has no JSON form; write it as a string, list "
                "or mapping (without an explicit tag such as !!binary, !!set or !!timestamp)",
            )
        return 1

    return size(document, 0)


def _pointer_of(document: Any, target: Any) -> str | None:
    """The pointer of the first place ``target`` (by identity) appears in ``document``."""
    stack: list[tuple[str, Any]] = [("", document)]
    seen: set[int] = set()
    while stack:
        pointer, node = stack.pop()
        if node is target:
            return pointer
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            stack.extend((f"{pointer}/{_escape(str(k))}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in enumerate(node))
    return None  # pragma: no cover - the target comes from the document


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _not_json_problem(document: Any, error: _NotJson) -> DefinitionProblem:
    parent = _pointer_of(document, error.parent) or ""
    if error.reason:
        return DefinitionProblem(
            pointer=f"{parent}/{_escape(str(error.key))}", message=error.reason, rule="syntax"
        )
    key = error.key
    written = "null" if key is None else json.dumps(key)
    return DefinitionProblem(
        pointer=parent,
        message=f"the key {written} is not a string; JSON keys are strings, so quote it "
        f"('{written}':)",
        rule="syntax",
    )


def load_document(text_or_bytes: str | bytes, *, filename: str | None = None) -> dict[str, Any]:
    """Parse a definition written in YAML or JSON into plain dicts, lists and scalars.

    Raises ``InvalidDefinition`` with one problem when the text is not YAML or JSON, the top
    level is not a mapping, or a key or value has no JSON form (rule ``syntax``), or when
    aliases expand it to more than ``MAX_VALUES`` values (rule ``size``).
    """
    where = filename or "the definition"
    try:
        document = yaml.load(text_or_bytes, Loader=_Yaml12Loader)  # a SafeLoader subclass
        too_big = isinstance(document, dict) and _expanded_size(document, MAX_VALUES) > MAX_VALUES
    except _NotJson as error:
        raise InvalidDefinition([_not_json_problem(document, error)]) from None
    except (_TooDeep, RecursionError):
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it",
                    rule="size",
                )
            ]
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = " ".join(str(getattr(error, "problem", None) or error).split())
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=f"{where} is not valid YAML or JSON{position}: {reason}",
                    rule="syntax",
                )
            ]
        ) from None
    if too_big:
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=(
                        f"{where} expands to more than {MAX_VALUES} values (through YAML "
                        "aliases?); write the repeated parts out or make the definition smaller"
                    ),
                    rule="size",
                )
            ]
        )
    if not isinstance(document, dict):
        kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
        kind = "empty" if document is None else kinds.get(type(document), type(document).__name__)
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=(
                        f"{where} must be a mapping with 'document' and 'do' at the top level, "
                        f"not {kind}"
                    ),
                    rule="syntax",
                )
            ]
        )
    return document
