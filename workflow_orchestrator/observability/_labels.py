"""Metric names and bounded label values: what a client sends never grows ``/metrics``.

A label whose values come from outside (an event's ``type``, an HTTP method) goes through a
``BoundedLabel``: a value is cut to ``max_length`` characters, and once ``max_values`` distinct
values have been seen every new one is counted as ``other``. The values seen first keep their
own series for the life of the process.
"""

from __future__ import annotations

import attrs

__all__ = [
    "HTTP_METHODS",
    "MAX_LABEL_LENGTH",
    "MAX_LABEL_VALUES",
    "OTHER",
    "PREFIX",
    "BoundedLabel",
    "http_method_label",
]

#: The first part of every metric name of the service.
PREFIX = "workflow_orchestrator"
MAX_LABEL_VALUES = 200
MAX_LABEL_LENGTH = 100
OTHER = "other"
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


@attrs.define(eq=False)
class BoundedLabel:
    """The label values of one label: at most ``max_values`` distinct ones (then ``other``),
    each at most ``max_length`` characters (longer ones end in ``...``)."""

    max_values: int = MAX_LABEL_VALUES
    max_length: int = MAX_LABEL_LENGTH
    _seen: set[str] = attrs.field(factory=set, init=False)

    def __call__(self, value: str) -> str:
        """The label value to record ``value`` under."""
        if len(value) > self.max_length:
            value = value[: max(self.max_length - 3, 0)] + "..."
        if value in self._seen:
            return value
        if len(self._seen) >= self.max_values:
            return OTHER
        self._seen.add(value)
        return value

    def distinct(self) -> int:
        """How many values have their own series (no I/O)."""
        return len(self._seen)


def http_method_label(method: str) -> str:
    """``method`` when it is a standard HTTP method, else ``other``."""
    return method if method in HTTP_METHODS else OTHER
