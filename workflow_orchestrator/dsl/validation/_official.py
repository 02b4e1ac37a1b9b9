"""The official DSL 1.0.3 JSON schema as an optional, extra check of definitions.

The project's own grammar (``_grammar``) is the authority and needs no file. An operator may
also hand in the official schema (the ``definitions.schema`` setting, ``WORKFLOW_DSL_SCHEMA``,
``definitions validate --schema``): it is read outside this package (``dsl`` does no I/O),
given here as a loaded document, and checked to be the 1.0.3 workflow schema by its ``$id``.

jsonschema-rs reports a failed ``oneOf`` (every task is a ``oneOf`` of twelve task types) as
"is not valid under any of the schemas". ``_explain`` picks the branch the author meant (by
its required keys, ``const`` values and type: ``call: http`` means the HTTP call branch) and
reports that branch's nested errors instead, recursively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import jsonschema_rs

from workflow_orchestrator.errors import OrchestratorError

from ._problems import DefinitionProblem, json_pointer

SCHEMA_ID = "https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml"
_ALTERNATIVE_KINDS = frozenset({"OneOfNotValid", "AnyOf"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class WrongSchema(OrchestratorError, ValueError):
    """A document given as the official schema is not the Serverless Workflow 1.0.3 schema."""


@attrs.frozen(eq=False)
class OfficialSchema:
    """The official workflow schema, compiled once; ``problems`` checks a definition with it."""

    document: Mapping[str, Any] = attrs.field(repr=False)
    validator: Any = attrs.field(repr=False)

    @classmethod
    def from_document(cls, document: Any) -> OfficialSchema:
        """Compile a loaded schema document.

        Raises ``WrongSchema`` (whose message reads after "the file ...") when its ``$id`` is
        not the 1.0.3 workflow schema's or it is not a valid JSON schema.
        """
        found = document.get("$id") if isinstance(document, Mapping) else None
        if found != SCHEMA_ID:
            raise WrongSchema(
                f"is not the Serverless Workflow 1.0.3 schema ($id is {found!r}, expected "
                f"{SCHEMA_ID!r})"
            )
        try:
            validator = jsonschema_rs.validator_for(document)
        except ValueError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WrongSchema(f"is not a valid JSON schema: {reason}") from None
        return cls(document=document, validator=validator)

    def problems(self, document: Mapping[str, Any]) -> list[DefinitionProblem]:
        """Every problem the schema finds in ``document``, with ``oneOf`` failures explained."""
        errors = list(self.validator.iter_errors(document))
        return list(dict.fromkeys(_explain(errors, document, self.document)))


def _resolve_pointer(schema: Any, fragment: str) -> Any:
    node = schema
    for raw in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _deref(schema: Any, root: Mapping[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 20:
        reference = str(schema["$ref"])
        if not reference.startswith("#"):
            break
        schema = _resolve_pointer(root, reference[1:])
        seen += 1
    return schema


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_matches(expected: Any, value: Any) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    for name in names:
        types = _JSON_TYPES.get(str(name), ())
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, types):
            return True
    return False


def _score(schema: Any, value: Any, root: Mapping[str, Any], depth: int = 0) -> int:
    """How clearly ``value`` was meant to be an instance of ``schema`` (higher is clearer)."""
    schema = _deref(schema, root)
    if not isinstance(schema, Mapping) or depth > 8:
        return 0
    score = 0
    if "type" in schema and not _type_matches(schema["type"], value):
        return -1000
    if isinstance(value, Mapping):
        for key in schema.get("required", ()):
            score += 10 if key in value else -1
        for key, subschema in (schema.get("properties") or {}).items():
            subschema = _deref(subschema, root)
            if key in value and isinstance(subschema, Mapping) and "const" in subschema:
                score += 100 if value[key] == subschema["const"] else -100
    for part in schema.get("allOf", ()):
        score += _score(part, value, root, depth + 1)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        score += max(_score(branch, value, root, depth + 1) for branch in alternatives)
    return score


def _title(schema: Any, root: Mapping[str, Any]) -> str:
    reference = schema.get("$ref") if isinstance(schema, Mapping) else None
    target = _deref(schema, root)
    title = schema.get("title") if isinstance(schema, Mapping) else None
    if title is None and isinstance(target, Mapping):
        title = target.get("title")
    if title is None and reference:
        title = str(reference).rsplit("/", 1)[-1]
    if title is None and isinstance(target, Mapping):
        title = str(target.get("type", "value"))
    return _CAMEL.sub(" ", str(title)).lower()


def _value_text(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: Any, unexpected: list[str] | None = None) -> str:
    kind = type(error.kind).__name__
    if kind == "Required":
        missing = re.match(r'^"(.*)" is a required property$', error.message)
        name = missing.group(1) if missing else error.message
        return f"missing required property {name!r}; add it"
    if kind in ("UnevaluatedProperties", "AdditionalProperties"):
        names = [str(name) for name in getattr(error.kind, "unexpected", None) or []]
        if unexpected is not None:
            names = unexpected
        listed = ", ".join(repr(name) for name in names) or "some properties"
        if len(names) == 1:
            return f"unexpected property {listed}; remove it or fix its spelling"
        return f"unexpected properties {listed}; remove them or fix their spelling"
    if kind == "Type":
        found = re.search(r"is not of type (.*)$", error.message)
        expected = found.group(1).replace('"', "") if found else "another type"
        return f"{_value_text(error.instance)} is not of type {expected}"
    if kind == "Enum":
        found = re.search(r"is not one of (.*)$", error.message)
        options = found.group(1) if found else "the allowed values"
        return f"{_value_text(error.instance)} is not one of {options}"
    text = str(error.message)
    return text[:1].lower() + text[1:]


def _rule(error: Any) -> str:
    location = str(error.absolute_keyword_location or "")
    if "#" in location:
        return location.rsplit("/", 1)[-1]
    path = list(error.schema_path)
    return str(path[-1]) if path else "schema"


def _declared_properties(schema: Any, root: Mapping[str, Any], depth: int = 0) -> set[str]:
    schema = _deref(schema, root)
    if not isinstance(schema, Mapping) or depth > 8:
        return set()
    names = set((schema.get("properties") or {}).keys())
    for keyword in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(keyword, ()):
            names |= _declared_properties(part, root, depth + 1)
    for keyword in ("then", "else"):
        if keyword in schema:
            names |= _declared_properties(schema[keyword], root, depth + 1)
    return names


def _unexpected(error: Any, root: Mapping[str, Any]) -> list[str]:
    """The names of an "unevaluated properties" error that the schema really does not declare.

    A property whose own subschema failed is also reported as unevaluated by jsonschema-rs
    (annotations of failed subschemas are dropped); it is declared, so it is not repeated.
    """
    names = [str(name) for name in getattr(error.kind, "unexpected", None) or []]
    location = str(error.absolute_keyword_location or "")
    if "#" not in location:
        return names
    try:
        parent = _resolve_pointer(root, location.split("#", 1)[1].rsplit("/", 1)[0])
    except (IndexError, KeyError, ValueError, TypeError):
        return names
    declared = _declared_properties(parent, root)
    return [name for name in names if name not in declared]


def _drop_noise(errors: list[Any], root: Mapping[str, Any]) -> list[Any]:
    """Drop "unevaluated properties" errors that only echo another error.

    That is when the names are declared (their own subschema failed) or when a ``oneOf`` failed
    at the same place (the explanation of the ``oneOf`` covers it).
    """
    alternatives = {
        tuple(error.instance_path)
        for error in errors
        if type(error.kind).__name__ in _ALTERNATIVE_KINDS
    }
    return [
        error
        for error in errors
        if type(error.kind).__name__ != "UnevaluatedProperties"
        or (tuple(error.instance_path) not in alternatives and _unexpected(error, root))
    ]


def _explain_alternatives(
    error: Any, document: Any, root: Mapping[str, Any]
) -> Iterator[DefinitionProblem]:
    location = str(error.absolute_keyword_location or "")
    branches_errors: list[list[Any]] = list(getattr(error.kind, "context", None) or [])
    try:
        branches = _resolve_pointer(root, location.split("#", 1)[1])
    except (IndexError, KeyError, ValueError, TypeError):
        branches = None
    value = error.instance
    if not isinstance(branches, list) or len(branches) != len(branches_errors):
        yield DefinitionProblem(
            pointer=json_pointer(error.instance_path), message=_message(error), rule=_rule(error)
        )
        return
    scores = [_score(branch, value, root) for branch in branches]
    best = max(scores)
    chosen = [index for index, score in enumerate(scores) if score == best]
    if best > 0 and len(chosen) == 1:
        yield from _explain(branches_errors[chosen[0]], document, root)
        return
    alternatives = list(dict.fromkeys(_title(branch, root) for branch in branches))
    pointer = json_pointer(error.instance_path)
    if isinstance(value, Mapping) and all(
        isinstance(_deref(branch, root), Mapping) for branch in branches
    ):
        keys = _branch_keys(branches, root)
        if keys and not any(key in value for key in keys):
            found = ", ".join(map(str, value)) or "none"
            yield DefinitionProblem(
                pointer=pointer,
                message=(f"expected exactly one of {', '.join(keys)}; found {found}"),
                rule=_rule(error),
            )
            return
    yield DefinitionProblem(
        pointer=pointer,
        message=f"{_value_text(value)} is not a valid {' or '.join(alternatives)}",
        rule=_rule(error),
    )


def _branch_keys(branches: list[Any], root: Mapping[str, Any]) -> list[str]:
    """The key each branch requires first (``call``, ``do``, ... for tasks), if all have one."""
    keys: list[str] = []
    for branch in branches:
        key = _required_key(branch, root)
        if key is None:
            return []
        keys.append(key)
    return list(dict.fromkeys(keys))


def _required_key(schema: Any, root: Mapping[str, Any], depth: int = 0) -> str | None:
    target = _deref(schema, root)
    if not isinstance(target, Mapping) or depth > 4:
        return None
    required = list(target.get("required", ()))
    for part in target.get("allOf", ()):
        part = _deref(part, root)
        if isinstance(part, Mapping):
            required += list(part.get("required", ()))
    if required:
        return str(required[0])
    alternatives = target.get("oneOf") or ()
    return _required_key(alternatives[0], root, depth + 1) if alternatives else None


def _explain(
    errors: list[Any], document: Any, root: Mapping[str, Any]
) -> Iterator[DefinitionProblem]:
    for error in _drop_noise(errors, root):
        if type(error.kind).__name__ in _ALTERNATIVE_KINDS:
            yield from _explain_alternatives(error, document, root)
        else:
            unexpected = (
                _unexpected(error, root)
                if type(error.kind).__name__ == "UnevaluatedProperties"
                else None
            )
            yield DefinitionProblem(
                pointer=json_pointer(error.instance_path),
                message=_message(error, unexpected),
                rule=_rule(error),
            )
