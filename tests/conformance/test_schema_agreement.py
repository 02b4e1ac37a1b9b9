"""The project's DSL grammar agrees with the official 1.0.3 JSON schema.

The schema and the official examples are read from ../shared (tests/support/spec.py); the
service itself never reads them. The schema is run by jsonschema-rs, untouched.

- Every official example (66 YAML files) is accepted by both, and by the whole validation (the semantic checks
  too); what this service will not run is only reported as unsupported.
- Hypothesis mutates the examples (a required key dropped, a wrong type, an unknown or misspelt
  key, a bad name or version, a bad duration, a wrong enum word, an empty list or mapping, a
  second task type, a tricky string, a part grafted from another example). Whenever the schema
  refuses a mutant, the grammar refuses it too, each of its problems at or below a pointer the
  schema reports and each schema pointer covered; whenever the schema accepts one, the grammar
  accepts it. At least 500 mutants must be refused by both.
- The typed model builds every mutant that the whole validation accepts.
- Structural problems and semantic ones are told apart by their rule: the grammar reports only
  ``STRUCTURAL_RULES`` (JSON Schema keywords); the semantic checks (undeclared references,
  expressions that do not compile, ``then`` targets) use other rule names and may refuse what
  the schema accepts.

Generation is derandomized, so CI runs the same mutants every time.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.spec import require_spec
from workflow_orchestrator.dsl.model import build_workflow
from workflow_orchestrator.dsl.validation import (
    STRUCTURAL_RULES,
    check_definition,
    load_document,
    structural_problems,
)

Location = tuple[Any, ...]
MUTANTS = 1200
MINIMUM_REFUSED = 500

DURATION_KEYS = frozenset({"wait", "after", "every", "delay", "duration", "from", "to", "for"})
ENUM_KEYS = frozenset(
    {"read", "return", "output", "pullPolicy", "cleanup", "grant", "extend", "protocol", "method"}
)
TASK_TYPES = (
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
TRICKY_STRINGS = (
    "",
    " ",
    "1.0",
    "v1.0.0",
    "01.0.0",
    "1.0.0-",
    "1.0.0+build.1",
    "order_processing",
    "-leading",
    "UPPER-case",
    "a" * 64,
    "é",
    "PT",
    "P",
    "PT1S\n",
    " PT1S",
    "P1DT",
    "PT1.5S",
    "1m",
    "${ .a }",
    "${ .a",
    "${}",
    "${ \n .a }",
    "\xa0${ .a }",
    "\x1c${ .a }",
    "/relative/path",
    "https://example.com/x",
    "mailto:someone",
    "1http://x",
    "end",
    "http",
)
OTHER_VALUES = (0, -1, 1.5, 2.0, True, None, "text", [], ["x"], {}, {"key": "value"})


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _at_or_below(pointer: str, ancestor: str) -> bool:
    return pointer == ancestor or pointer.startswith(ancestor + "/")


def _locations(node: Any, base: Location = ()) -> list[Location]:
    found: list[Location] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        found.append((*base, key))
        found.extend(_locations(child, (*base, key)))
    return found


def _get(document: Any, location: Location) -> Any:
    for part in location:
        document = document[part]
    return document


@pytest.fixture(scope="module")
def spec() -> tuple[Any, dict[str, dict[str, Any]]]:
    """The compiled official schema and the official examples by file name."""
    folder = require_spec()
    schema = load_document((folder / "schema" / "workflow.yaml").read_bytes())
    examples = {
        path.name: load_document(path.read_bytes())
        for path in sorted((folder / "examples").glob("*.yaml"))
    }
    return jsonschema_rs.validator_for(schema), examples


def test_every_official_example_is_accepted(spec: tuple[Any, dict[str, dict[str, Any]]]) -> None:
    """The official examples pass the schema, the grammar and the semantic checks."""
    validator, examples = spec
    assert len(examples) == 66  # the folder's 67 files: 66 examples and README.md
    for name, document in examples.items():
        assert validator.is_valid(document), name
        assert structural_problems(document) == [], name
        assert check_definition(document).problems == (), name


class _Mutator:
    """Applies one mutation of a kind to a document, drawing what it needs from Hypothesis."""

    def __init__(self, draw: Callable[[Any], Any], examples: dict[str, dict[str, Any]]) -> None:
        self.draw = draw
        self.examples = examples

    def pick(self, document: Any, wanted: Callable[[Location, Any], bool]) -> Location | None:
        candidates = [loc for loc in _locations(document) if wanted(loc, _get(document, loc))]
        return self.draw(st.sampled_from(candidates)) if candidates else None

    def apply(self, kind: str, document: dict[str, Any]) -> bool:
        """Mutate ``document`` in place; False when it has no place for this kind."""
        handler: Callable[[dict[str, Any]], bool] = getattr(self, "_" + kind.replace("-", "_"))
        return handler(document)

    def _replace(self, document: Any, location: Location | None, value: Any) -> bool:
        if location is None:
            return False
        try:
            parent = _get(document, location[:-1])
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed it
            return False
        key = location[-1]
        if (isinstance(parent, list) and isinstance(key, int) and key < len(parent)) or (
            isinstance(parent, dict) and isinstance(key, str)
        ):
            parent[key] = value
        else:
            return False
        return True

    def _drop_key(self, document: dict[str, Any]) -> bool:
        location = self.pick(document, lambda loc, _: isinstance(loc[-1], str))
        if location is None:
            return False
        del _get(document, location[:-1])[location[-1]]
        return True

    def _wrong_type(self, document: dict[str, Any]) -> bool:
        location = self.pick(document, lambda loc, _: True)
        value = _get(document, location) if location else None
        others = [v for v in OTHER_VALUES if type(v) is not type(value)]
        return self._replace(document, location, copy.deepcopy(self.draw(st.sampled_from(others))))

    def _unknown_key(self, document: dict[str, Any]) -> bool:
        location = self.pick(document, lambda _, value: isinstance(value, dict) and bool(value))
        if location is None:
            return False
        mapping = _get(document, location)
        key = self.draw(st.sampled_from(sorted(mapping)))
        new_key = self.draw(
            st.sampled_from([key + "s", key[:-1] or "x", key.upper(), "extra", "thn", "cal"])
        )
        mapping[new_key] = copy.deepcopy(self.draw(st.sampled_from(OTHER_VALUES)))
        return True

    def _name_pattern(self, document: dict[str, Any]) -> bool:
        field = self.draw(st.sampled_from(["name", "namespace"]))
        text = self.draw(
            st.one_of(
                st.sampled_from(TRICKY_STRINGS),
                st.text(alphabet="ab-_.Z9 é", min_size=0, max_size=70),
            )
        )
        return self._replace(document, ("document", field), text)

    def _version_pattern(self, document: dict[str, Any]) -> bool:
        field = self.draw(st.sampled_from(["version", "dsl"]))
        text = self.draw(
            st.one_of(
                st.sampled_from(TRICKY_STRINGS),
                st.text(alphabet="0123.-+aZ\n", min_size=0, max_size=14),
            )
        )
        return self._replace(document, ("document", field), text)

    def _bad_duration(self, document: dict[str, Any]) -> bool:
        location = self.pick(
            document, lambda loc, value: loc[-1] in DURATION_KEYS and isinstance(value, str | dict)
        )
        value = self.draw(
            st.one_of(
                st.text(alphabet="PTYMWDHS0123456789.${ }\n", max_size=10),
                st.dictionaries(
                    st.sampled_from(
                        ["days", "hours", "minutes", "seconds", "milliseconds", "weeks"]
                    ),
                    st.one_of(st.integers(-3, 3), st.sampled_from([1.0, 1.5, True, "1"])),
                    max_size=3,
                ),
            )
        )
        return self._replace(document, location, value)

    def _wrong_enum(self, document: dict[str, Any]) -> bool:
        location = self.pick(
            document, lambda loc, value: loc[-1] in ENUM_KEYS and isinstance(value, str)
        )
        if location is None:
            return False
        word = _get(document, location)
        return self._replace(
            document, location, self.draw(st.sampled_from([word + "s", word.upper(), word[1:], ""]))
        )

    def _empty(self, document: dict[str, Any]) -> bool:
        location = self.pick(
            document, lambda _, value: isinstance(value, list | dict) and bool(value)
        )
        value = _get(document, location) if location else None
        return self._replace(document, location, [] if isinstance(value, list) else {})

    def _second_type(self, document: dict[str, Any]) -> bool:
        location = self.pick(
            document,
            lambda _, value: isinstance(value, dict) and any(k in value for k in TASK_TYPES),
        )
        if location is None:
            return False
        task = _get(document, location)
        extra = self.draw(st.sampled_from([k for k in TASK_TYPES if k not in task]))
        task[extra] = {"set": {"a": 1}, "wait": "PT1S", "do": [], "call": "f"}.get(extra, {})
        return True

    def _tricky_string(self, document: dict[str, Any]) -> bool:
        location = self.pick(document, lambda _, value: isinstance(value, str))
        return self._replace(document, location, self.draw(st.sampled_from(TRICKY_STRINGS)))

    def _graft(self, document: dict[str, Any]) -> bool:
        location = self.pick(document, lambda _, value: True)
        donor = self.examples[self.draw(st.sampled_from(sorted(self.examples)))]
        part = self.draw(st.sampled_from(_locations(donor)))
        return self._replace(document, location, copy.deepcopy(_get(donor, part)))


KINDS = (
    "drop-key",
    "wrong-type",
    "unknown-key",
    "name-pattern",
    "version-pattern",
    "bad-duration",
    "wrong-enum",
    "empty",
    "second-type",
    "tricky-string",
    "graft",
)


def test_mutated_examples_agree(spec: tuple[Any, dict[str, dict[str, Any]]]) -> None:
    """Mutants of the examples are refused by both or accepted by both, at the same places."""
    validator, examples = spec
    counts: Counter[tuple[str, str]] = Counter()

    @settings(
        max_examples=MUTANTS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(examples)), label="example")
        document = copy.deepcopy(examples[name])
        mutator = _Mutator(data.draw, examples)
        kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=2), label="kinds")
        applied = [kind for kind in kinds if mutator.apply(kind, document)]
        schema_pointers = [_pointer(e.instance_path) for e in validator.iter_errors(document)]
        ours = structural_problems(document)
        label = "+".join(applied) or "none"
        if not schema_pointers:
            assert ours == [], f"{name} {label}: the schema accepts, the grammar refuses"
            semantic = check_definition(document).problems
            assert not {p.rule for p in semantic} & STRUCTURAL_RULES
            if not semantic:
                build_workflow(document)  # the typed model builds whatever validation accepts
            counts["accepted", label] += 1
            return
        assert ours, f"{name} {label}: the schema refuses at {schema_pointers}, the grammar accepts"
        for problem in ours:
            assert any(_at_or_below(problem.pointer, s) for s in schema_pointers), (
                f"{name} {label}: {problem} is not at or below a schema pointer {schema_pointers}"
            )
        for pointer in schema_pointers:
            assert any(_at_or_below(p.pointer, pointer) for p in ours), (
                f"{name} {label}: nothing of ours at or below {pointer}: {[str(p) for p in ours]}"
            )
        counts["refused", label] += 1

    check()
    refused = sum(n for (verdict, _), n in counts.items() if verdict == "refused")
    assert refused >= MINIMUM_REFUSED, counts
    refused_kinds = {
        kind
        for (verdict, label), _ in counts.items()
        if verdict == "refused"
        for kind in label.split("+")
    }
    assert refused_kinds == set(KINDS), counts
    accepted = sum(n for (verdict, _), n in counts.items() if verdict == "accepted")
    assert accepted >= 50, counts  # the other direction is exercised too


def test_spec_is_read_from_beside_the_checkout() -> None:
    """The spec comes from ../shared, never from inside the project."""
    folder = require_spec()
    project = Path(__file__).resolve().parents[2]
    assert not folder.resolve().is_relative_to(project)
