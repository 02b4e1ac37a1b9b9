"""The metadata of a setting's field: its value kind, choices, bounds, secrecy and help.

The converter (``_convert``) reads it to parse and check a value, ``config show`` to mask
secrets; ``_settings`` and ``_security_settings`` declare their fields with `setting`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["setting"]


def setting(
    *,
    kind: str | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    help: str = "",
) -> dict[str, Any]:
    """Field metadata: ``kind`` (``duration``, ``size``), allowed ``choices``, ``secret`` (never
    shown), ``minimum``/``maximum`` and the ``help`` an error message quotes."""
    return {
        "kind": kind,
        "choices": choices,
        "secret": secret,
        "minimum": minimum,
        "maximum": maximum,
        "help": help,
    }
