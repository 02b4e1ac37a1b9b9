"""The building blocks of the DSL grammar: small nodes that check one JSON value each.

A node's ``check(value, path, out)`` appends an ``Issue`` to ``out`` for every way ``value``
breaks the node, and nothing when it is valid: validity is "no issue added". Every node is
exact (it refuses what the official 1.0.3 schema refuses and accepts what it accepts) and says
what to change. Issues are reported where the problem is: a wrong value at its own pointer, a
missing key at the mapping that lacks it, an unknown key at the key itself.

``path`` is a linked list, ``(parent_path, key)`` with ``ROOT`` (None) at the top, so walking a
valid document creates one small tuple per value and no pointer strings at all; the pointer
is computed only for the values that have an issue.

Strings follow the schema's regular expressions with the semantics of the schema's validator
(the Rust ``regex`` crate): ``$`` is the very end (``\\Z`` here), ``\\s`` is Unicode White_Space
(``WHITESPACE``; Python's ``\\s`` would also take ``\\x1c``-``\\x1f``), ``.`` is anything but a
newline. The JSON types are JSON's: a whole float such as ``1.0`` is an integer, ``true`` is not.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

Path = tuple[Any, Any] | None
Issue = tuple[Path, str, str]
Issues = list[Issue]

ROOT: Path = None
#: The rules of structural issues (the JSON Schema keywords they stand for); semantic checks
#: use other names, which is how the two kinds of problems are told apart.
STRUCTURAL_RULES = frozenset(
    {
        "type",
        "required",
        "unevaluatedProperties",
        "enum",
        "pattern",
        "not",
        "oneOf",
        "minLength",
        "minItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
    }
)
WHITESPACE = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def pointer(path: Path) -> str:
    """The RFC 6901 JSON pointer of ``path`` (``""`` for the whole document)."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(str(key).replace("~", "~0").replace("/", "~1"))
    return "".join("/" + part for part in reversed(parts))


def show(value: Any) -> str:
    """A short rendering of a value for messages: ``'text'``, ``5``, ``{"a": 1}``..."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, sort_keys=False, default=repr)
        except ValueError:  # a circular structure
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_integer(value: Any) -> bool:
    """JSON Schema's integer: an int that is not a bool, or a float with no fraction."""
    kind = value.__class__
    return kind is int or (kind is float and value.is_integer())


def suggestion(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a misspelt ``word``, if one is close enough."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def quoted(names: Iterable[Any], conjunction: str = "or") -> str:
    """``'a', 'b' or 'c'`` (or ``and``)."""
    items = [repr(name) for name in names]
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


class Node:
    """One rule of the grammar. Subclasses set ``noun`` (``"a duration"``) for messages."""

    noun: str = "a value"

    def check(self, value: Any, path: Path, out: Issues) -> None:  # pragma: no cover
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is valid (the issues are thrown away)."""
        scratch: Issues = []
        self.check(value, ROOT, scratch)
        return not scratch

    def wrong_type(self, value: Any, path: Path, out: Issues) -> None:
        out.append((path, f"must be {self.noun}, not {show(value)}", "type"))


@attrs.frozen
class AnyValue(Node):
    """Any JSON value at all (free-form data, such as ``set`` values or an HTTP body)."""

    noun: str = "any value"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        return


@attrs.frozen
class Text(Node):
    """A string, optionally one that ``pattern`` matches (or that ``forbidden`` does not).

    ``explain`` turns the value into the sentence of a pattern failure.
    """

    noun: str = "a string"
    pattern: re.Pattern[str] | None = None
    explain: Callable[[str], str] | None = None
    forbidden: re.Pattern[str] | None = None
    min_length: int = 0

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if not isinstance(value, str):
            self.wrong_type(value, path, out)
            return
        if self.pattern is not None and self.pattern.match(value) is None:
            out.append((path, self._explained(value), "pattern"))
        elif self.forbidden is not None and self.forbidden.match(value) is not None:
            out.append((path, self._explained(value), "not"))
        elif len(value) < self.min_length:
            out.append((path, f"must not be empty; write {self.noun}", "minLength"))

    def _explained(self, value: str) -> str:
        if self.explain is not None:
            return self.explain(value)
        return f"{show(value)} is not {self.noun}"  # pragma: no cover


@attrs.frozen
class Choice(Node):
    """One of a fixed set of strings (the schema's ``enum`` of strings)."""

    values: tuple[str, ...]
    noun: str = "one of the listed words"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if isinstance(value, str) and value in self.values:
            return
        listing = ", ".join(self.values)
        hint = suggestion(value, self.values) if isinstance(value, str) else None
        more = f"; did you mean {hint!r}?" if hint else ""
        out.append((path, f"must be one of {listing}, not {show(value)}{more}", "enum"))


@attrs.frozen
class Integer(Node):
    """A whole number, optionally between ``minimum`` and ``maximum`` (inclusive)."""

    noun: str = "a whole number"
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if not is_integer(value):
            self.wrong_type(value, path, out)
        elif self.minimum is not None and value < self.minimum:
            out.append((path, f"must be at least {self.minimum}, not {show(value)}", "minimum"))
        elif self.maximum is not None and value > self.maximum:
            out.append((path, f"must be at most {self.maximum}, not {show(value)}", "maximum"))


@attrs.frozen
class Boolean(Node):
    """``true`` or ``false``."""

    noun: str = "true or false"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value is not True and value is not False:
            self.wrong_type(value, path, out)


@attrs.frozen
class ListOf(Node):
    """A list whose every item is an ``item``; at least ``min_items`` of them."""

    item: Node
    noun: str = "a list"
    min_items: int = 0

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not list:
            self.wrong_type(value, path, out)
            return
        if len(value) < self.min_items:
            out.append((path, f"must have at least {self.min_items} item(s); add one", "minItems"))
        item = self.item
        for index, element in enumerate(value):
            item.check(element, (path, index), out)


@attrs.frozen
class MapOf(Node):
    """A mapping of free names to ``values`` (the schema's ``additionalProperties: X``)."""

    values: Node
    noun: str = "a mapping"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        values = self.values
        for key, element in value.items():
            values.check(element, (path, key), out)


@attrs.frozen
class Entry(Node):
    """A mapping of exactly one name to a ``value`` (a task list's item, a switch case)."""

    value: Node
    noun: str = "a mapping of one name to its definition"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        if len(value) != 1:
            if value:
                found = f"{len(value)} names ({quoted(value, 'and')})"
                rule = "maxProperties"
            else:
                found, rule = "none", "minProperties"
            out.append((path, f"must be {self.noun}; found {found}; give each its own item", rule))
        for key, element in value.items():
            self.value.check(element, (path, key), out)


@attrs.frozen
class Record(Node):
    """A mapping with named ``fields``.

    ``required`` keys must be present; ``exclusive`` groups need exactly one of their keys;
    ``closed`` refuses every key that is not a field (the schema's ``unevaluatedProperties:
    false``), naming the closest field. ``min_keys`` is the schema's ``minProperties``.
    """

    noun: str
    fields: Mapping[str, Node] = attrs.field(factory=dict)
    required: tuple[str, ...] = ()
    exclusive: tuple[tuple[str, ...], ...] = ()
    closed: bool = True
    min_keys: int = 0

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        for key in self.required:
            if key not in value:
                out.append((path, f"{self.noun} needs {key!r}; add it", "required"))
        for group in self.exclusive:
            exclusive_keys(value, group, self.noun, path, out)
        if len(value) < self.min_keys:
            out.append((path, f"must not be empty; {self.noun} needs a key", "minProperties"))
        fields = self.fields
        for key, element in value.items():
            node = fields.get(key)
            if node is not None:
                node.check(element, (path, key), out)
            elif self.closed:
                out.append(unknown_key(key, fields, self.noun, path))


def exclusive_keys(
    value: Mapping[str, Any], group: Sequence[str], noun: str, path: Path, out: Issues
) -> None:
    """Exactly one key of ``group`` must be present in ``value``."""
    present = [key for key in group if key in value]
    if not present:
        out.append((path, f"{noun} needs one of {quoted(group)}; add one", "oneOf"))
    elif len(present) > 1:
        out.append(
            (
                path,
                f"{noun} takes only one of {quoted(group)}, and this one has "
                f"{quoted(present, 'and')}; keep one",
                "oneOf",
            )
        )


def unknown_key(key: Any, fields: Iterable[str], noun: str, path: Path) -> Issue:
    """The issue of a key that ``noun`` does not have, at the key's own pointer."""
    names = sorted(fields)
    hint = suggestion(key, names) if isinstance(key, str) else None
    if hint is not None:
        advice = f"did you mean {hint!r}?"
    elif len(names) > 12:
        advice = "remove it or fix its spelling"
    elif names:
        advice = f"{noun} has only {', '.join(names)}; remove it or fix its spelling"
    else:
        advice = f"{noun} has no keys of its own; remove it"
    return ((path, key), f"unknown key {show(key)}; {advice}", "unevaluatedProperties")


@attrs.frozen
class ByType(Node):
    """A value that is one of several JSON types, each with its own node.

    The schema's ``oneOf`` of branches of different types (a timeout or a timeout's name, an
    object or an expression): the value's type picks the branch.
    """

    noun: str
    mapping: Node | None = None
    string: Node | None = None

    def check(self, value: Any, path: Path, out: Issues) -> None:
        kind = value.__class__
        if kind is dict and self.mapping is not None:
            self.mapping.check(value, path, out)
        elif kind is str and self.string is not None:
            self.string.check(value, path, out)
        else:
            self.wrong_type(value, path, out)


@attrs.define(eq=False)
class Forward(Node):
    """A node defined later (the grammar is recursive: tasks hold task lists of tasks)."""

    noun: str
    target: Node | None = None

    def bind(self, target: Node) -> None:
        """Set the node this one stands for; once."""
        if self.target is not None:  # pragma: no cover
            raise RuntimeError(f"{self.noun} is already defined")
        self.target = target

    def check(self, value: Any, path: Path, out: Issues) -> None:
        assert self.target is not None, f"{self.noun} was never defined"
        self.target.check(value, path, out)


def text_matching(noun: str, regex: str, explain: Callable[[str], str]) -> Text:
    """A ``Text`` node for strings ``regex`` matches from the start (write ``\\Z`` for ``$``)."""
    return Text(noun=noun, pattern=re.compile(regex), explain=explain)
