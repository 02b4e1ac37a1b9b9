"""Definition validation: loading, schema problems people can act on, semantic rules."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import workflow_orchestrator.dsl.validation as validation
from tests.support.spec import has_spec_or_schema_override, require_spec
from workflow_orchestrator.dsl.validation import (
    DefinitionProblem,
    InvalidDefinition,
    SchemaNotFound,
    ValidationOptions,
    load_document,
    load_dsl_schema,
    validate_definition,
    validate_file,
)
from workflow_orchestrator.errors import OrchestratorError

HEADER = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""


@pytest.fixture(autouse=True)
def _require_schema() -> None:
    if not has_spec_or_schema_override():
        require_spec()


def _problems(yaml_text: str, options: ValidationOptions | None = None) -> list[str]:
    document = load_document(HEADER + yaml_text)
    if options is None:
        return [str(problem) for problem in validate_definition(document)]
    return [str(problem) for problem in validate_definition(document, options)]


def test_public_surface() -> None:
    """The names the service and the CLI code against stay exported."""
    assert sorted(validation.__all__) == sorted(
        [
            "SCHEMA_ENVIRONMENT_VARIABLE",
            "DefinitionProblem",
            "InvalidDefinition",
            "SchemaNotFound",
            "ValidationOptions",
            "load_document",
            "load_dsl_schema",
            "validate_definition",
            "validate_file",
        ]
    )


def test_invalid_definition_carries_problems() -> None:
    """InvalidDefinition is an OrchestratorError and a ValueError that lists its problems."""
    problems = [
        DefinitionProblem(pointer="/do/0/a", message="first", rule="r1"),
        DefinitionProblem(pointer="", message="second", rule="r2"),
    ]
    error = InvalidDefinition(problems)
    assert isinstance(error, OrchestratorError)
    assert isinstance(error, ValueError)
    assert error.problems == problems
    assert str(error) == "the workflow definition is invalid: /do/0/a: first (r1) (and 1 more)"
    assert pickle.loads(pickle.dumps(error)).problems == problems
    assert str(problems[1]) == "/: second (r2)"


def test_yaml_uses_yaml_1_2_scalars() -> None:
    """'on', 'yes', '1:30' and dates stay strings, as in YAML 1.2 and JSON."""
    document = load_document("on: yes\nt: 1:30\nd: 2024-01-01\nb: true\nn: ~\ni: 0x1F\nf: 1.5\n")
    expected = {"on": "yes", "t": "1:30", "d": "2024-01-01", "b": True, "n": None}
    assert document == {**expected, "i": 31, "f": 1.5}


def test_json_loads() -> None:
    """A JSON definition loads like YAML, from text or bytes."""
    assert load_document(b'{"document": {"dsl": "1.0.3"}, "do": []}') == {
        "document": {"dsl": "1.0.3"},
        "do": [],
    }


def test_syntax_error_is_one_problem() -> None:
    """Text that is not YAML gives one problem with the position."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document("do: [\n", filename="flow.yaml")
    [problem] = caught.value.problems
    assert problem.rule == "syntax"
    assert problem.pointer == ""
    assert problem.message.startswith("flow.yaml is not valid YAML or JSON at line 2, column 1")


def test_top_level_must_be_a_mapping() -> None:
    """A list or empty document says what the top level must be."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document("- a\n- b\n")
    assert caught.value.problems[0].message == (
        "the definition must be a mapping with 'document' and 'do' at the top level, not list"
    )


def test_valid_definition_has_no_problems() -> None:
    """A correct definition gives an empty list."""
    assert _problems("do:\n  - greet:\n      set:\n        message: ${ .name }\n") == []


def test_nested_task_problem_names_the_real_field() -> None:
    """A wrong field inside a task inside try is reported there, not as a oneOf failure."""
    problems = _problems(
        """\
do:
  - charge:
      try:
        - pay:
            call: http
            with:
              method: 5
              endpoint: https://example.com/pay
      catch:
        errors:
          with:
            status: 503
"""
    )
    assert problems == ["/do/0/charge/try/0/pay/with/method: 5 is not of type string (type)"]


def test_call_http_without_with() -> None:
    """call: http without 'with' names the missing property of the HTTP branch."""
    assert _problems("do:\n  - get:\n      call: http\n") == [
        "/do/0/get: missing required property 'with'; add it (required)"
    ]


def test_unknown_task_type() -> None:
    """A task without a task keyword lists the task types."""
    assert _problems("do:\n  - oops:\n      sett:\n        a: 1\n") == [
        "/do/0/oops: expected exactly one of call, do, fork, emit, for, listen, raise, run, "
        "set, switch, try, wait; found sett (oneOf)"
    ]


def test_unexpected_property() -> None:
    """A misspelt property of a task is named."""
    assert _problems("do:\n  - w:\n      wait: PT1S\n      thn: end\n") == [
        "/do/0/w: unexpected property 'thn'; remove it or fix its spelling (unevaluatedProperties)"
    ]


def test_missing_document_fields() -> None:
    """Missing top-level fields are required problems at the right pointers."""
    problems = [str(p) for p in validate_definition({"document": {"dsl": "1.0.3"}})]
    assert problems == [
        "/: missing required property 'do'; add it (required)",
        "/document: missing required property 'namespace'; add it (required)",
        "/document: missing required property 'name'; add it (required)",
        "/document: missing required property 'version'; add it (required)",
    ]


def test_then_target_must_be_a_sibling() -> None:
    """then must name a task of the same list or continue/exit/end; switch cases too."""
    problems = _problems(
        """\
do:
  - first:
      set: {a: 1}
      then: nowhere
  - inner:
      do:
        - deep:
            set: {b: 2}
            then: first
  - route:
      switch:
        - yes:
            when: .a == 1
            then: missing
        - other:
            then: end
"""
    )
    assert problems == [
        "/do/0/first/then: then refers to task 'nowhere', which is not in the same task list; "
        "use one of ['first', 'inner', 'route'] or continue, exit, end (then-target)",
        "/do/1/inner/do/0/deep/then: then refers to task 'first', which is not in the same task "
        "list; use one of ['deep'] or continue, exit, end (then-target)",
        "/do/2/route/switch/0/yes/then: then refers to task 'missing', which is not in the same "
        "task list; use one of ['first', 'inner', 'route'] or continue, exit, end (then-target)",
    ]


def test_duplicate_task_names() -> None:
    """Two tasks with one name in a list are reported."""
    assert _problems("do:\n  - a:\n      set: {x: 1}\n  - a:\n      set: {x: 2}\n") == [
        "/do/1/a: task name 'a' is already used in this task list; give each task a unique name "
        "(unique-task-name)"
    ]


def test_undeclared_references() -> None:
    """Functions, errors, retries, authentications, secrets and timeouts must be declared."""
    problems = _problems(
        """\
use:
  secrets: [known]
  authentications:
    good:
      basic:
        use: unknownSecret
do:
  - f:
      call: chargeCard
  - e:
      raise:
        error: outOfStock
  - t:
      try:
        - x:
            set: {a: 1}
      catch:
        retry: patient
  - a:
      call: http
      with:
        method: get
        endpoint:
          uri: https://example.com
          authentication:
            use: bad
  - s:
      set:
        key: ${ $secrets.apiKey }
        ok: ${ $secrets.known }
  - w:
      wait: PT1S
      timeout: short
"""
    )
    assert problems == [
        "/use/authentications/good/basic/use: secret 'unknownSecret' is not declared in "
        "use.secrets (declared: ['known']); declare it or fix the name (secret-reference)",
        "/do/0/f/call: calls function 'chargeCard', which is not declared in use.functions "
        "(none are declared); declare it or fix the name (function-reference)",
        "/do/1/e/raise/error: error 'outOfStock' is not declared in use.errors "
        "(none are declared); declare it or fix the name (error-reference)",
        "/do/2/t/catch/retry: retry policy 'patient' is not declared in use.retries "
        "(none are declared); declare it or fix the name (retry-reference)",
        "/do/3/a/with/endpoint/authentication/use: authentication policy 'bad' is not declared "
        "in use.authentications (declared: ['good']); declare it or fix the name "
        "(authentication-reference)",
        "/do/4/s/set/key: the expression reads secret 'apiKey', which is not declared in "
        "use.secrets (declared: ['known']); declare it or fix the name (secret-reference)",
        "/do/5/w/timeout: timeout 'short' is not declared in use.timeouts (none are declared); "
        "declare it or fix the name (timeout-reference)",
    ]


def test_expressions_are_compiled() -> None:
    """Strict expressions anywhere and loose-mode fields are compiled; errors are reported."""
    problems = _problems(
        """\
do:
  - s:
      if: .a ==
      set:
        a: ${ .a( }
        b: ${ env.HOME }
        c: not ${ an expression }
  - l:
      for:
        each: pet
        in: .pets
      while: $pet.ok and $pett.ok
      do:
        - x:
            set: {v: "${ $pet }"}
"""
    )
    assert problems == [
        "/do/0/s/if: expression '.a ==': is not valid jq: syntax error, unexpected end of file "
        "at line 1, column 4 (expression)",
        "/do/0/s/set/a: expression '${ .a( }': is not valid jq: syntax error, unexpected "
        "'(', expecting end of file at line 1, column 4 (expression)",
        "/do/0/s/set/b: expression '${ env.HOME }': uses env, which runtime expressions may "
        "not use (no environment, input, module, halt or debug builtins); remove it "
        "(expression)",
        "/do/1/l/while: the expression reads $pett, which is neither a runtime argument "
        "($authorization, $context, $input, $output, $runtime, $secrets, $task, $workflow) nor "
        "a variable declared by for.each, for.at, catch.as or foreach.item/at; fix the name "
        "(expression-variable)",
    ]


def test_options_enable_run_tasks() -> None:
    """run.shell, run.script and run.container are accepted when the options allow them."""
    text = """\
do:
  - sh:
      run:
        shell:
          command: echo hi
  - js:
      run:
        script:
          language: js
          code: console.log(1)
  - box:
      run:
        container:
          image: alpine
"""
    assert [p.split(" (")[-1] for p in _problems(text)] == [
        "shell-disabled)",
        "script-disabled)",
        "container-runtime)",
    ]
    options = ValidationOptions(allow_shell=True, allow_script=True, container_runtime=True)
    assert _problems(text, options) == []


def test_all_problems_at_once() -> None:
    """Schema and semantic problems of one document are all reported together."""
    problems = _problems(
        """\
do:
  - a:
      call: http
  - b:
      set: {x: "${ .x( }"}
      then: c
  - g:
      call: grpc
      with:
        proto: {endpoint: https://example.com/a.proto}
        service: {name: S, host: example.com}
        method: M
"""
    )
    assert [problem.rsplit(" (", 1)[-1] for problem in problems] == [
        "required)",
        "expression)",
        "then-target)",
        "unsupported-call)",
    ]


def test_validate_file_reports_unreadable_files(tmp_path: Path) -> None:
    """A missing file is one problem, printed as POINTER: message (rule)."""
    problems = validate_file(tmp_path / "absent.yaml")
    assert [str(p) for p in problems] == [
        f"/: cannot read {str(tmp_path / 'absent.yaml')!r}: no such file or directory (file)"
    ]


def test_validate_file(tmp_path: Path) -> None:
    """validate_file loads and validates a definition on disk."""
    path = tmp_path / "flow.yaml"
    path.write_text(HEADER + "do:\n  - a:\n      set: {x: 1}\n      then: b\n")
    assert [str(p) for p in validate_file(path)] == [
        "/do/0/a/then: then refers to task 'b', which is not in the same task list; use one of "
        "['a'] or continue, exit, end (then-target)"
    ]


def test_schema_location_can_be_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """WORKFLOW_DSL_SCHEMA wins; a wrong path says which variable to set."""
    missing = tmp_path / "workflow.yaml"
    monkeypatch.setenv("WORKFLOW_DSL_SCHEMA", str(missing))
    load_dsl_schema.cache_clear()
    try:
        with pytest.raises(SchemaNotFound) as caught:
            load_dsl_schema()
        assert isinstance(caught.value, FileNotFoundError)
        assert str(caught.value) == (
            f"the Serverless Workflow 1.0.3 schema was not found (tried {missing}); "
            "set WORKFLOW_DSL_SCHEMA to the path of its workflow.yaml"
        )
        missing.write_text("$id: https://example.com/other.yaml\n")
        with pytest.raises(ValueError, match=r"is not the Serverless Workflow 1\.0\.3 schema"):
            load_dsl_schema()
    finally:
        monkeypatch.delenv("WORKFLOW_DSL_SCHEMA")
        load_dsl_schema.cache_clear()


def test_alias_bomb_is_refused() -> None:
    """Nested YAML aliases that expand exponentially are refused quickly, not expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    with pytest.raises(InvalidDefinition) as caught:
        load_document("\n".join(lines) + "\n")
    assert [str(problem) for problem in caught.value.problems] == [
        "/: the definition expands to more than 200000 values (through YAML aliases?); "
        "write the repeated parts out or make the definition smaller (size)"
    ]


def test_yaml_merge_keys_work() -> None:
    """Anchors and << merge keys are resolved like any YAML loader does."""
    document = load_document("base: &base {a: 1}\nmore:\n  <<: *base\n  b: 2\n")
    assert document["more"] == {"a": 1, "b": 2}


def test_deep_nesting_is_refused() -> None:
    """A definition nested hundreds of levels deep is one clear problem, not a crash."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document("a: " + "[" * 300 + "]" * 300 + "\n")
    assert [str(problem) for problem in caught.value.problems] == [
        "/: the definition is nested more than 200 levels deep; flatten it (size)"
    ]
