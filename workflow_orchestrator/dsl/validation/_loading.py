"""Loading definitions from YAML or JSON text with YAML 1.2 scalars.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans, ``1:30`` is 90 and
``2024-01-01`` is a date; the DSL's ``schedule.on`` key would turn into ``True``. The loader
here resolves only the YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal,
``0o``/``0x`` integers and floats; everything else stays a string. JSON is a subset of YAML 1.2
and loads the same way (text that looks like JSON is read by ``json`` first, which is faster).

Every text is untrusted: the loader counts what aliases expand to in bytes of JSON
(``max_expanded_size``, ``definitions.maxExpandedSize`` for definitions), refuses nesting
deeper than ``MAX_DEPTH`` and integers Python will not convert, and looks at an optional
``Deadline`` while it builds the document. Remote documents (schemas, OpenAPI documents) are
read by ``load_data`` with the same limits.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from ._limits import Deadline
from ._problems import DefinitionProblem, InvalidDefinition

MAX_EXPANDED_SIZE = 4 * 1024 * 1024
MAX_DEPTH = 200
_DEADLINE_EVERY = 4096  # YAML nodes between two looks at the deadline

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml


class _Yaml12Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader (libyaml's when available) with the YAML 1.2 core schema's scalar types,
    looking at its ``deadline`` every few thousand nodes it builds."""

    deadline: Deadline | None = None
    _built = 0

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        self._built += 1
        if self.deadline is not None and self._built % _DEADLINE_EVERY == 0:
            self.deadline.check()
        return super().construct_object(node, deep)


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


class _TooLarge(Exception):
    pass


class _NotJson(Exception):
    """A value (or a mapping's key) that JSON cannot hold; ``parent`` holds it."""

    def __init__(self, parent: Any, key: Any, reason: str) -> None:
        super().__init__(reason)
        self.parent = parent
        self.key = key
        self.reason = reason


_JSON_SCALARS = (str, int, bool, type(None))


def _scalar_size(item: Any) -> int:
    """About the bytes of ``item`` written as JSON (escapes aside)."""
    if item.__class__ is str:
        return 2 + (len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass")))
    if item is None or item is True:
        return 4
    if item is False:
        return 5
    return len(repr(item))


def _expanded_size(document: Any, limit: int) -> int:
    """About the bytes ``document`` has as JSON text, aliases written out each time.

    Memoised by object identity, so a "billion laughs" of nested aliases costs linear time, and
    stops (``_TooLarge``) as soon as the count passes ``limit``. Raises ``_TooDeep`` past
    ``MAX_DEPTH`` levels of nesting and ``_NotJson`` for what JSON cannot hold: keys that are
    not strings (``1:``, ``null:``), ``.nan``/``.inf``, and values of explicit YAML tags such as
    ``!!binary``, ``!!set`` or ``!!timestamp``.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise _TooDeep
        total = 2
        if isinstance(node, dict):
            for key, item in node.items():
                if key.__class__ is not str:
                    raise _NotJson(node, key, "")
                total += _scalar_size(key) + 2 + _child(node, key, item, depth)
                if total > limit:
                    raise _TooLarge
        elif isinstance(node, list):
            for index, item in enumerate(node):
                total += 1 + _child(node, index, item, depth)
                if total > limit:
                    raise _TooLarge
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
        return _scalar_size(item)

    if isinstance(document, dict | list):
        return size(document, 0)
    return _child(None, "", document, 0)


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


def _parse(text: str | bytes, deadline: Deadline | None) -> Any:
    """YAML 1.2 (JSON first, the fast path, when the text looks like JSON)."""
    head = text[:1] if isinstance(text, str) else text[:1].decode("latin-1")
    if head in ("{", "[") or (head.isspace() and _looks_like_json(text)):
        try:
            return json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            pass  # YAML says what is wrong, with the line and column
    loader = _Yaml12Loader(text)
    loader.deadline = deadline
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _looks_like_json(text: str | bytes) -> bool:
    stripped = text.lstrip()
    first = stripped[:1] if isinstance(stripped, str) else stripped[:1].decode("latin-1")
    return first in ("{", "[")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _size_text(limit: int) -> str:
    mib = 1024 * 1024
    if limit >= mib and limit % mib == 0:
        return f"{limit // mib} MiB"
    return f"{limit:,} bytes"


def load_data(
    text_or_bytes: str | bytes,
    *,
    what: str,
    max_expanded_size: int = MAX_EXPANDED_SIZE,
    size_setting: str = "definitions.maxExpandedSize",
    deadline: Deadline | None = None,
) -> Any:
    """Parse YAML or JSON text into plain dicts, lists and scalars, within limits.

    ``what`` names the text in messages (``the definition``, ``the OpenAPI document ...``).
    Raises ``InvalidDefinition`` with one problem when the text is not YAML or JSON or a key or
    value has no JSON form (rule ``syntax``), when it nests deeper than ``MAX_DEPTH`` levels or
    its aliases expand it to more than ``max_expanded_size`` bytes of JSON (rule ``size``, naming
    ``size_setting``), or when ``deadline`` passes while it is read (rule ``limit``).
    """
    try:
        document = _parse(text_or_bytes, deadline)
        _expanded_size(document, max_expanded_size)
    except InvalidDefinition:
        raise  # the deadline passed
    except _NotJson as error:
        raise InvalidDefinition([_not_json_problem(document, error)]) from None
    except (_TooDeep, RecursionError):
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=f"{what} is nested more than {MAX_DEPTH} levels deep; flatten it",
                    rule="size",
                )
            ]
        ) from None
    except _TooLarge:
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=(
                        f"{what} expands to more than {_size_text(max_expanded_size)} of JSON "
                        f"(through YAML aliases?), the limit set by {size_setting}; write the "
                        "repeated parts out, make it smaller or raise the setting"
                    ),
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
                    message=f"{what} is not valid YAML or JSON{position}: {reason}",
                    rule="syntax",
                )
            ]
        ) from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise InvalidDefinition(
            [
                DefinitionProblem(
                    pointer="",
                    message=f"{what} is not valid YAML or JSON: {str(error).split(';')[0]}",
                    rule="syntax",
                )
            ]
        ) from None
    return document


def load_document(
    text_or_bytes: str | bytes,
    *,
    filename: str | None = None,
    max_expanded_size: int = MAX_EXPANDED_SIZE,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Parse a definition written in YAML or JSON into plain dicts, lists and scalars.

    Raises ``InvalidDefinition`` with one problem as ``load_data`` does (the limit of
    ``definitions.maxExpandedSize``), or when the top level is not a mapping (rule ``syntax``).
    """
    where = filename or "the definition"
    document = load_data(
        text_or_bytes, what=where, max_expanded_size=max_expanded_size, deadline=deadline
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
