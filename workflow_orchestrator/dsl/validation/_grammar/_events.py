"""Events: the properties of an emitted or awaited event, filters, consumption strategies,
and the iterator over consumed events (``foreach``).

A consumption strategy has exactly one of ``all``, ``any`` and ``one``; ``until`` goes only
with ``any``, and the strategy given as ``until`` has no ``until`` of its own.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._nodes import ByType, Issues, ListOf, MapOf, Node, Path, Record, exclusive_keys, unknown_key
from ._policies import EXPORT, OUTPUT
from ._values import ANY, LITERAL, TASK_LIST, TEXT, URI_OR_EXPRESSION

_PROPERTIES: dict[str, Node] = {
    "id": TEXT,
    "source": URI_OR_EXPRESSION,
    "type": TEXT,
    "time": LITERAL,
    "subject": TEXT,
    "datacontenttype": TEXT,
    "dataschema": URI_OR_EXPRESSION,
    "data": ANY,
}

EMITTED_EVENT = Record(
    noun="an event to emit",
    fields={
        "with": Record(
            noun="an event to emit",
            fields=_PROPERTIES,
            required=("source", "type"),
            closed=False,
        )
    },
    closed=False,
)
EVENT_FILTER = Record(
    noun="an event filter",
    fields={
        "with": Record(noun="an event filter", fields=_PROPERTIES, closed=False, min_keys=1),
        "correlate": MapOf(
            Record(
                noun="a correlation",
                fields={"from": TEXT, "expect": TEXT},
                required=("from",),
                closed=False,
            )
        ),
    },
    required=("with",),
)
_FILTERS = ListOf(EVENT_FILTER, noun="a list of event filters")
_STRATEGIES = ("all", "any", "one")


@attrs.frozen
class Strategy(Node):
    """An event consumption strategy; a ``nested`` one (an ``until``) has no ``until``."""

    nested: bool
    noun: str = "an event consumption strategy (a mapping with all, any or one)"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
            return
        exclusive_keys(value, _STRATEGIES, "an event consumption strategy", path, out)
        for key, item in value.items():
            where = (path, key)
            if key in ("all", "any"):
                _FILTERS.check(item, where, out)
            elif key == "one":
                EVENT_FILTER.check(item, where, out)
            elif key != "until":
                out.append(unknown_key(key, (*_STRATEGIES, "until"), "a strategy", path))
            elif self.nested:
                out.append(
                    (
                        where,
                        "the strategy of an 'until' has no 'until' of its own; remove it",
                        "not",
                    )
                )
            elif "any" not in value:
                out.append(
                    (
                        where,
                        "'until' goes only with 'any'; remove it, or listen to 'any' events",
                        "unevaluatedProperties",
                    )
                )
            else:
                _UNTIL.check(item, where, out)


STRATEGY = Strategy(nested=False)
_UNTIL = ByType(
    noun="a runtime expression or an event consumption strategy",
    string=TEXT,
    mapping=Strategy(nested=True),
)

SUBSCRIPTION_ITERATOR = Record(
    noun="an event iterator",
    fields={"item": TEXT, "at": TEXT, "do": TASK_LIST, "output": OUTPUT, "export": EXPORT},
)
