"""Loading definitions from YAML or JSON text with YAML 1.2 scalars.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, ``1:30`` is 90 and
``2024-01-01`` is a date; the DSL's ``schedule.on`` key would turn into ``True``. The loader
here resolves only the YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal,
``0o``/``0x`` integers and floats; everything else stays a string. JSON is a subset of YAML 1.2
and loads the same way.
"""

from __future__ import annotations

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


def _expanded_size(document: Any, limit: int) -> int:
    """Number of values ``document`` has as a tree (aliases counted each time), up to ``limit``.

    Memoised by object identity, so a "billion laughs" of nested aliases costs linear time.
    Raises ``_TooDeep`` past ``MAX_DEPTH`` levels of nesting.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise _TooDeep
        total = 1
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            for item in children:
                total += size(item, depth + 1)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    return size(document, 0)


def load_document(text_or_bytes: str | bytes, *, filename: str | None = None) -> dict[str, Any]:
    """Parse a definition written in YAML or JSON into plain dicts, lists and scalars.

    Raises ``InvalidDefinition`` with one problem (pointer ``""``) when the text is not YAML or
    JSON or the top level is not a mapping (rule ``syntax``), or when aliases expand it to more
    than ``MAX_VALUES`` values (rule ``size``).
    """
    where = filename or "the definition"
    try:
        document = yaml.load(text_or_bytes, Loader=_Yaml12Loader)  # a SafeLoader subclass
        too_big = isinstance(document, dict) and _expanded_size(document, MAX_VALUES) > MAX_VALUES
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
        reason = getattr(error, "problem", None) or str(error)
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
        kind = type(document).__name__ if document is not None else "empty"
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
