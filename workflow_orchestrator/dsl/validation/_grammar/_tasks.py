"""Tasks: the twelve task types, what every task may have, and ``run`` processes.

A task is a mapping with exactly one type key (``call``, ``do``, ``emit``, ``for``, ``fork``,
``listen``, ``raise``, ``run``, ``set``, ``switch``, ``try``, ``wait``; a ``for`` task also
has ``do``), the keys of its type, and the keys every task may have (``if``, ``input``,
``output``, ``export``, ``timeout``, ``then``, ``metadata``); nothing else. This is the
schema's ``oneOf`` of twelve closed task schemas: a task matches at most one of them, and the
type key says which, so the problems reported are that type's (not "matches none of 12").
A ``call`` task's arguments depend on what it calls (``_calls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._calls import CALL_ARGUMENTS, CALL_NAME, FUNCTION_ARGUMENTS
from ._events import EMITTED_EVENT, STRATEGY, SUBSCRIPTION_ITERATOR
from ._nodes import (
    Boolean,
    ByType,
    Choice,
    Entry,
    Issues,
    ListOf,
    Node,
    Path,
    Record,
    quoted,
    suggestion,
    unknown_key,
)
from ._policies import (
    ERROR_FILTER,
    ERROR_OR_NAME,
    EXPORT,
    EXTERNAL_RESOURCE,
    INPUT,
    OUTPUT,
    RETRY_POLICY_OR_NAME,
    TIMEOUT_OR_NAME,
)
from ._values import DURATION, MAPPING, TASK, TASK_LIST, TEXT, TEXT_LIST

__all__ = ["BASE", "PROCESSES", "TASK", "TYPE_KEYS", "Task"]


@attrs.frozen
class Lifetime(Node):
    """A container's lifetime: ``after`` is needed with ``cleanup: eventually``, else refused."""

    record: Record
    noun: str = "a container lifetime"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        self.record.check(value, path, out)
        # The schema's `if` holds when cleanup is absent (that is reported as missing above).
        if value.get("cleanup", "eventually") == "eventually":
            if "after" not in value:
                out.append(
                    (
                        path,
                        "cleanup: eventually needs 'after' (when to remove it); add it",
                        "required",
                    )
                )
        elif "after" in value:
            out.append(
                ((path, "after"), "'after' goes only with cleanup: eventually; remove it", "not")
            )


_PROCESS_COMMON: dict[str, Node] = {
    "stdin": TEXT,
    "arguments": TEXT_LIST,
    "environment": MAPPING,
}
_CONTAINER = Record(
    noun="a container",
    fields={
        "image": TEXT,
        "name": TEXT,
        "command": TEXT,
        "ports": MAPPING,
        "volumes": MAPPING,
        **_PROCESS_COMMON,
        "lifetime": Lifetime(
            Record(
                noun="a container lifetime",
                fields={"cleanup": Choice(("always", "never", "eventually")), "after": DURATION},
                required=("cleanup",),
            )
        ),
        "pullPolicy": Choice(("ifNotPresent", "always", "never")),
    },
    required=("image",),
)
_SCRIPT = Record(
    noun="a script",
    fields={"language": TEXT, **_PROCESS_COMMON, "code": TEXT, "source": EXTERNAL_RESOURCE},
    required=("language",),
    exclusive=(("code", "source"),),
)
_SHELL = Record(
    noun="a shell command", fields={"command": TEXT, **_PROCESS_COMMON}, required=("command",)
)
_SUBFLOW = Record(
    noun="a workflow to run",
    fields={"namespace": TEXT, "name": TEXT, "version": TEXT, "input": MAPPING},
    required=("namespace", "name", "version"),
)
PROCESSES = ("container", "script", "shell", "workflow")
_RUN = Record(
    noun="a process to run",
    fields={
        "await": Boolean(),
        "return": Choice(("stdout", "stderr", "code", "all", "none")),
        "container": _CONTAINER,
        "script": _SCRIPT,
        "shell": _SHELL,
        "workflow": _SUBFLOW,
    },
    exclusive=(PROCESSES,),
)

_CATCH = Record(
    noun="a catch",
    fields={
        "errors": Record(noun="an error filter", fields={"with": ERROR_FILTER}, closed=False),
        "as": TEXT,
        "when": TEXT,
        "exceptWhen": TEXT,
        "retry": RETRY_POLICY_OR_NAME,
        "do": TASK_LIST,
    },
)

BASE: Mapping[str, Node] = {
    "if": TEXT,
    "input": INPUT,
    "output": OUTPUT,
    "export": EXPORT,
    "timeout": TIMEOUT_OR_NAME,
    "then": TEXT,
    "metadata": MAPPING,
}

# type key -> (noun, the type's own fields, its required keys besides the type key)
_KINDS: dict[str, tuple[str, dict[str, Node], tuple[str, ...]]] = {
    "do": ("a do task", {"do": TASK_LIST}, ()),
    "fork": (
        "a fork task",
        {
            "fork": Record(
                noun="a fork",
                fields={"branches": TASK_LIST, "compete": Boolean()},
                required=("branches",),
            )
        },
        (),
    ),
    "emit": (
        "an emit task",
        {"emit": Record(noun="an emit", fields={"event": EMITTED_EVENT}, required=("event",))},
        (),
    ),
    "for": (
        "a for task",
        {
            "for": Record(
                noun="a for loop",
                fields={"each": TEXT, "in": TEXT, "at": TEXT},
                required=("in",),
            ),
            "while": TEXT,
            "do": TASK_LIST,
        },
        ("do",),
    ),
    "listen": (
        "a listen task",
        {
            "listen": Record(
                noun="a listen",
                fields={"to": STRATEGY, "read": Choice(("data", "envelope", "raw"))},
                required=("to",),
            ),
            "foreach": SUBSCRIPTION_ITERATOR,
        },
        (),
    ),
    "raise": (
        "a raise task",
        {"raise": Record(noun="a raise", fields={"error": ERROR_OR_NAME}, required=("error",))},
        (),
    ),
    "run": ("a run task", {"run": _RUN}, ()),
    "set": (
        "a set task",
        {
            "set": ByType(
                noun="a mapping of values or a runtime expression",
                mapping=Record(noun="a set task's values", closed=False, min_keys=1),
                string=TEXT,
            )
        },
        (),
    ),
    "switch": (
        "a switch task",
        {
            "switch": ListOf(
                Entry(
                    Record(
                        noun="a switch case",
                        fields={"when": TEXT, "then": TEXT},
                        required=("then",),
                    ),
                    noun="a mapping of one case name to its case",
                ),
                noun="a list of cases",
                min_items=1,
            )
        },
        (),
    ),
    "try": ("a try task", {"try": TASK_LIST, "catch": _CATCH}, ("catch",)),
    "wait": ("a wait task", {"wait": DURATION}, ()),
}
TYPE_KEYS = (
    "call",
    "do",
    "emit",
    "for",
    "fork",
    "listen",
    "raise",
    "run",
    "set",
    "switch",
    "try",
    "wait",
)


def _record(noun: str, fields: Mapping[str, Node], required: tuple[str, ...]) -> Record:
    return Record(noun=noun, fields={**BASE, **fields}, required=required)


_RECORDS = {
    kind: _record(noun, fields, (kind, *required))
    for kind, (noun, fields, required) in _KINDS.items()
}
_CALLS = {
    name: _record(noun, {"call": CALL_NAME, "with": arguments}, ("call", "with"))
    for name, (noun, arguments) in CALL_ARGUMENTS.items()
}
_FUNCTION_CALL = _record(
    "a function call", {"call": CALL_NAME, "with": FUNCTION_ARGUMENTS}, ("call",)
)
_EVERY_KEY = sorted(
    {*BASE, "call", "with"} | {key for _, fields, _ in _KINDS.values() for key in fields}
)


@attrs.frozen
class Task(Node):
    """A task of any type (see the module doc)."""

    noun: str = "a task (a mapping with a task type such as set, call or do)"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        kinds = [key for key in TYPE_KEYS if key in value]
        if "for" in value and "do" in value:
            kinds.remove("do")
        if len(kinds) == 1:
            self._record(kinds[0], value).check(value, path, out)
        elif kinds:
            out.append(
                (
                    path,
                    f"a task has one type, and this one has {quoted(kinds, 'and')}; keep one "
                    "and move the others to tasks of their own",
                    "oneOf",
                )
            )
        else:
            self._untyped(value, path, out)

    @staticmethod
    def _record(kind: str, value: dict[str, Any]) -> Record:
        if kind != "call":
            return _RECORDS[kind]
        called = value["call"]
        return _CALLS.get(called, _FUNCTION_CALL) if isinstance(called, str) else _FUNCTION_CALL

    @staticmethod
    def _untyped(value: dict[str, Any], path: Path, out: Issues) -> None:
        """A task without a type key: misspelt ones are named, else the types are listed."""
        named_a_type = False
        for key in value:
            if key in BASE:
                BASE[key].check(value[key], (path, key), out)
            elif key not in _EVERY_KEY:
                hint = suggestion(key, _EVERY_KEY) if isinstance(key, str) else None
                named_a_type = named_a_type or hint in TYPE_KEYS
                out.append(unknown_key(key, _EVERY_KEY, "a task", path))
        if not named_a_type:
            out.append(
                (
                    path,
                    f"a task needs a type: one of {', '.join(TYPE_KEYS)}; add one",
                    "oneOf",
                )
            )


TASK.bind(Task())
