"""The ``config`` part of the chart's values.schema.json, generated from the service's settings.

``config`` holds the service's own settings (``application.yaml``). Its schema is derived from
the attrs classes the service converts the file into (``workflow_orchestrator.config``), so a
key the service does not know (``config.server.prot``) stops ``helm install`` instead of the
pods. Values stay as loose as the service's converter is: ``"20"``, ``30s``, ``${VAR}`` and
``${secret:NAME}`` are all text the service converts at startup. On top of the derived shape,
the chart narrows what its templates read or own:

- ``server.port`` and ``server.managementPort`` are the container ports: integers 1-65535;
- ``server.shutdownGracePeriod`` gives terminationGracePeriodSeconds: a number of seconds or a
  duration such as ``30s``;
- ``database.url``, ``database.username``, ``database.password`` and ``database.primary.url``
  are not accepted: the chart writes the location and user from ``database.*`` and the
  password reaches the pods as ``DATABASE_PASSWORD`` from a Secret;
- secret settings (``meta secret``) take a ``${VAR}`` or ``${secret:NAME}`` reference (or, for
  an API key, its ``sha256:<hex>`` hash), never the secret itself, since the ConfigMap is not
  a Secret;
- for the same reason a read replica's URL (``database.replicas[].url``,
  ``database.readReplicas[].url``) may not carry a literal password, neither as
  ``user:password@`` nor as a query parameter whose name contains "password"; a reference
  there (``user:${secret:NAME}@``) is accepted.

Run ``python -m deploy.helm.config_schema`` (``make chart-schema``) after changing the settings;
``--check`` exits 1 when values.schema.json is not up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import attrs

from workflow_orchestrator.config import Settings, camel_case

__all__ = ["SCHEMA_PATH", "config_schema", "main", "schema_text"]

SCHEMA_PATH = Path(__file__).resolve().parent / "workflow-orchestrator" / "values.schema.json"

_SCALAR = ["string", "number", "boolean"]
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?\s*([mM][sS]|[sSmMhHdD])?$"
_REFERENCE_PATTERN = r"^(\$\{[^}]+\}|sha256:[0-9a-fA-F]{64})?$"
_REFERENCE = {
    "const": "a ${VARIABLE} or ${secret:NAME} reference, never the secret itself "
    "(application.yaml is a ConfigMap, not a Secret)"
}
# Case-insensitive "password", in the regular expressions JSON Schema validators share.
_PASSWORD = "[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]"
# A literal (not ``${...}``) value after ``user:`` in the authority, or of a query parameter
# named like a password.
_URL_PASSWORD_PATTERNS = (
    r"^[^/?#]*//[^/?#@:]*:([^/?#@$]|\$[^{])[^/?#@]*@",
    r"[?&][^=&#]*" + _PASSWORD + r"[^=&#]*=([^&#$]|\$[^{])",
)
_URL_WITHOUT_PASSWORD = {
    "const": "a URL without a literal password (user:password@ or a password parameter): "
    "application.yaml is a ConfigMap, not a Secret; the replicas log in as database.user with "
    "the password of database.password or database.existingSecret, or write the password as "
    "${secret:NAME} or ${VARIABLE} (extraEnv from a Secret), or the whole URL as ${VARIABLE}"
}
# Paths (camelCase, dotted) the chart writes or forbids in config: removed from the schema.
_OWNED_BY_CHART = (
    "database.url",
    "database.username",
    "database.password",
    "database.primary.url",
)


def _is_optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return inner, True
    return hint, False


def _leaf(hint: Any, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    """The schema of one value the service converts (numbers and booleans may come as text)."""
    if meta.get("secret"):
        # A failed ``const`` names what is expected without repeating the refused value.
        return {"type": "string", "if": {"pattern": _REFERENCE_PATTERN}, "else": _REFERENCE}
    kind = meta.get("kind")
    if hint is bool:
        schema: dict[str, Any] = {"type": ["boolean", "string"]}
    elif kind == "workers":
        schema = {"type": ["integer", "string"], "minimum": 1}
    elif kind == "size" or hint is int:
        schema = {"type": ["integer", "string"]}
    elif kind == "duration" or hint is float:
        schema = {"type": ["number", "string"]}
    else:
        schema = {"type": list(_SCALAR)}
    if hint in (int, float):
        for bound in ("minimum", "maximum"):
            if meta.get(bound) is not None:
                schema[bound] = meta[bound]
    return schema


def _value(hint: Any, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    inner, optional = _is_optional(hint)
    if attrs.has(inner):
        schema = _mapping(inner)
    elif typing.get_origin(inner) is tuple:
        (item, _ellipsis) = typing.get_args(inner)
        if attrs.has(item):
            schema = {"type": "array", "items": _mapping(item)}
        else:
            item_meta = {"choices": meta.get("choices")}
            schema = {"type": ["array", "string"], "items": _leaf(item, item_meta)}
    else:
        schema = _leaf(inner, meta)
    if optional:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*kinds, "null"]
    return schema


def _mapping(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            camel_case(field.name): _value(hints[field.name], field.metadata)
            for field in attrs.fields(cls)
        },
    }


def _node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def config_schema() -> dict[str, Any]:
    """The schema of the chart's ``config`` value."""
    schema = _mapping(Settings)
    schema["description"] = (
        "The service's settings (docs/operations/configuration.md), rendered into "
        "application.yaml; generated by deploy/helm/config_schema.py"
    )
    for dotted in _OWNED_BY_CHART:
        parent, _, leaf = dotted.rpartition(".")
        del _node(schema, parent)["properties"][leaf]
    server = _node(schema, "server")
    server["properties"]["port"] = dict(_PORT)
    server["properties"]["managementPort"] = dict(_PORT)
    server["properties"]["shutdownGracePeriod"] = {
        "type": ["number", "string"],
        "minimum": 0,
        "pattern": _DURATION_PATTERN,
    }
    server["required"] = ["port", "managementPort"]
    for replicas in ("replicas", "readReplicas"):
        url = _node(schema, "database")["properties"][replicas]["items"]["properties"]["url"]
        # A failed ``const`` says what is expected without repeating the refused URL.
        url["if"] = {"anyOf": [{"pattern": pattern} for pattern in _URL_PASSWORD_PATTERNS]}
        url["then"] = _URL_WITHOUT_PASSWORD
    schema["required"] = ["server"]
    return schema


def schema_text(current: dict[str, Any]) -> str:
    """values.schema.json's text with ``properties.config`` replaced by the generated one."""
    updated = dict(current)
    updated["properties"] = {**current["properties"], "config": config_schema()}
    return json.dumps(updated, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether the file is up to date"
    )
    args = parser.parse_args(argv)
    text = SCHEMA_PATH.read_text()
    wanted = schema_text(json.loads(text))
    if args.check:
        if text != wanted:
            print(f"{SCHEMA_PATH} is out of date: run make chart-schema", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(wanted)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
