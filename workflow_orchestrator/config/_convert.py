"""Turn a raw configuration tree (nested dicts from YAML and the environment) into ``Settings``.

The converter walks the attrs classes of ``_settings``: it maps camelCase YAML keys to fields,
coerces strings that came from the environment or from ``${VAR}`` interpolation into the field's
type, and collects *every* problem (unknown key with the closest valid spelling, wrong type, value
out of range, value not among the choices) instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from workflow_orchestrator.config._errors import ConfigProblem

__all__ = ["camel_case", "convert", "parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|k|m|g|t)?\s*$", re.IGNORECASE)
_SIZE_BYTES = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

SourceOf = Callable[[str], str]


def camel_case(name: str) -> str:
    """``management_port`` -> ``managementPort``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def parse_duration(value: object) -> float | None:
    """Seconds from ``30s``, ``500ms``, ``5m``, ``2h``, ``1d`` or a bare number of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _DURATION_SECONDS[(match.group(2) or "s").lower()]
    return None


def parse_size(value: object) -> int | None:
    """Bytes from ``100MB``, ``512KB``, ``1G`` or a bare number of bytes (binary multiples)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "b").lower()[0]
        return int(float(match.group(1)) * _SIZE_BYTES[unit])
    return None


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


@attrs.define
class _Converter:
    source_of: SourceOf
    problems: list[ConfigProblem] = attrs.Factory(list)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(source=self.source_of(key), key=key, message=message))

    def convert_class(self, cls: type[Any], raw: object, prefix: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.problem(prefix, f"expected a mapping of settings, got {_describe(raw)}")
            return cls()
        hints = typing.get_type_hints(cls)
        fields = {camel_case(f.name): f for f in attrs.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            field = fields.get(str(key))
            if field is None:
                self.problem(path, self._unknown_key_message(str(key), prefix, list(fields)))
                continue
            converted = self.convert_value(hints[field.name], value, path, field.metadata)
            if converted is not _INVALID:
                kwargs[field.name] = converted
        return cls(**kwargs)

    @staticmethod
    def _unknown_key_message(key: str, prefix: str, valid: list[str]) -> str:
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if not close:
            lowered = {v.lower(): v for v in valid}
            close = (
                [lowered[key.lower().replace("_", "")]]
                if key.lower().replace("_", "") in lowered
                else []
            )
        where = f"'{prefix}'" if prefix else "the top level"
        if close:
            suggestion = f"{prefix}.{close[0]}" if prefix else close[0]
            return f"unknown key; did you mean '{suggestion}'?"
        return f"unknown key; valid keys under {where} are: {', '.join(sorted(valid))}"

    def convert_value(self, hint: Any, value: object, path: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            # ``int | None``: null (a YAML key without a value) keeps None, the "not set" value.
            (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            return None if value is None else self.convert_value(inner, value, path, meta)
        if attrs.has(hint):
            return self.convert_class(hint, value, path)
        if origin is tuple:
            (item_type, _ellipsis) = typing.get_args(hint)
            if isinstance(value, str) and not attrs.has(item_type):
                items: list[object] = [part.strip() for part in value.split(",") if part.strip()]
            elif isinstance(value, list):
                items = value
            elif value is None:
                items = []
            else:
                self.problem(path, f"expected a list, got {_describe(value)}")
                return _INVALID
            item_meta = {"choices": meta.get("choices")} if meta.get("choices") else {}
            converted = [
                self.convert_value(item_type, item, f"{path}[{i}]", item_meta)
                for i, item in enumerate(items)
            ]
            if any(item is _INVALID for item in converted):
                return _INVALID
            return tuple(converted)
        kind = meta.get("kind")
        help_text = meta.get("help") or ""
        if kind == "duration":
            return self._checked(
                parse_duration(value), value, path, meta, help_text or "a duration"
            )
        if kind == "size":
            return self._checked(parse_size(value), value, path, meta, help_text or "a size")
        if kind == "workers":
            return self._checked_workers(value, path, help_text)
        if hint is bool:
            return self._to_bool(value, path)
        if hint is int:
            return self._checked(_to_int(value), value, path, meta, help_text or "an integer")
        if hint is float:
            return self._checked(_to_float(value), value, path, meta, help_text or "a number")
        if hint is str:
            return self._to_str(value, path, meta)
        raise TypeError(f"no converter for {hint!r} at {path}")  # a bug in _settings, not input

    def _checked(
        self, parsed: float | None, raw: object, path: str, meta: Mapping[str, Any], help_text: str
    ) -> Any:
        shown = "a secret value" if meta.get("secret") else _describe(raw)
        if parsed is None:
            self.problem(path, f"expected {help_text}, got {shown}")
            return _INVALID
        low, high = meta.get("minimum"), meta.get("maximum")
        if (low is not None and parsed < low) or (high is not None and parsed > high):
            self.problem(path, f"expected {help_text}, got {shown} (out of range)")
            return _INVALID
        return parsed

    def _checked_workers(self, value: object, path: str, help_text: str) -> Any:
        """``auto``, or a whole number >= 1 (kept as its decimal text)."""
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        count = _to_int(value)
        if count is None or count < 1:
            self.problem(path, f"expected {help_text}, got {_describe(value)}")
            return _INVALID
        return str(count)

    def _to_bool(self, value: object, path: str) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        self.problem(path, f"expected true or false, got {_describe(value)}")
        return _INVALID

    def _to_str(self, value: object, path: str, meta: Mapping[str, Any]) -> Any:
        if isinstance(value, Mapping | list) or value is None:
            self.problem(path, f"expected a text value, got {_describe(value)}")
            return _INVALID
        text = str(value).lower() if isinstance(value, bool) else str(value)
        choices: tuple[str, ...] | None = meta.get("choices")
        if choices:
            by_upper = {c.upper(): c for c in choices}
            if text.upper() not in by_upper:
                close = difflib.get_close_matches(text, choices, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.problem(path, f"expected one of {', '.join(choices)}, got {text!r}{hint}")
                return _INVALID
            return by_upper[text.upper()]
        return text


_INVALID: Any = object()


def _to_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _to_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def convert(
    cls: type[Any], raw: Mapping[str, Any], source_of: SourceOf
) -> tuple[Any, list[ConfigProblem]]:
    """Build ``cls`` from ``raw``; return it with every problem found (none when valid)."""
    converter = _Converter(source_of)
    result = converter.convert_class(cls, raw, "")
    return result, converter.problems
