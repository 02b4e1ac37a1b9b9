"""Definition validation: loading, structural problems people can act on, semantic rules,
what this runtime will not run, and the optional official schema (no schema file needed)."""

from __future__ import annotations

import pickle

import pytest

import workflow_orchestrator.dsl.validation as validation
from workflow_orchestrator.dsl.validation import (
    SCHEMA_ID,
    DefinitionProblem,
    InvalidDefinition,
    OfficialSchema,
    ValidationOptions,
    ValidationReport,
    WrongSchema,
    check_definition,
    load_document,
    validate_definition,
)
from workflow_orchestrator.errors import OrchestratorError

HEADER = """\
document:
  dsl: '1.0.3'
  namespace: test
  name: sample
  version: '0.1.0'
"""


def _problems(yaml_text: str, options: ValidationOptions | None = None) -> list[str]:
    document = load_document(HEADER + yaml_text)
    if options is None:
        return [str(problem) for problem in validate_definition(document)]
    return [str(problem) for problem in validate_definition(document, options)]


def test_public_surface() -> None:
    """The names the service and the CLI code against stay exported."""
    assert sorted(validation.__all__) == sorted(
        [
            "MAX_EXPANDED_SIZE",
            "MAX_EXPRESSIONS",
            "SCHEMA_ID",
            "STRUCTURAL_RULES",
            "UNSUPPORTED_RULES",
            "Deadline",
            "DefinitionProblem",
            "InvalidDefinition",
            "OfficialSchema",
            "ValidationOptions",
            "ValidationReport",
            "WrongSchema",
            "check_definition",
            "load_data",
            "load_document",
            "structural_problems",
            "validate_definition",
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
        "the definition must be a mapping with 'document' and 'do' at the top level, not a list"
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
    assert problems == ["/do/0/charge/try/0/pay/with/method: must be a string, not 5 (type)"]


def test_call_http_without_with() -> None:
    """call: http without 'with' names the missing key of an http call."""
    assert _problems("do:\n  - get:\n      call: http\n") == [
        "/do/0/get: an http call needs 'with'; add it (required)"
    ]


def test_misspelt_task_type() -> None:
    """A task whose type key is misspelt is told the type it probably meant."""
    assert _problems("do:\n  - oops:\n      sett:\n        a: 1\n") == [
        "/do/0/oops/sett: unknown key 'sett'; did you mean 'set'? (unevaluatedProperties)"
    ]


def test_task_without_type() -> None:
    """A task without a type key lists the task types."""
    assert _problems("do:\n  - oops:\n      then: end\n") == [
        "/do/0/oops: a task needs a type: one of call, do, emit, for, fork, listen, raise, run, "
        "set, switch, try, wait; add one (oneOf)"
    ]


def test_unexpected_property() -> None:
    """A misspelt key of a task is named at its own pointer, with the closest key."""
    assert _problems("do:\n  - w:\n      wait: PT1S\n      thn: end\n") == [
        "/do/0/w/thn: unknown key 'thn'; did you mean 'then'? (unevaluatedProperties)"
    ]


def test_missing_document_fields() -> None:
    """Missing top-level fields are required problems at the right pointers."""
    problems = [str(p) for p in validate_definition({"document": {"dsl": "1.0.3"}})]
    assert problems == [
        "/: a workflow definition needs 'do'; add it (required)",
        "/document: the document needs 'namespace'; add it (required)",
        "/document: the document needs 'name'; add it (required)",
        "/document: the document needs 'version'; add it (required)",
    ]


def test_version_must_be_semantic() -> None:
    """A document version such as 1.0 is refused with the form it must have."""
    problems = validate_definition(load_document(HEADER.replace("'0.1.0'", "'1.0'") + "do: []\n"))
    assert [str(p) for p in problems] == [
        "/document/version: '1.0' is not a semantic version such as 1.0.0 (pattern)"
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


def test_listen_foreach_tasks_are_checked() -> None:
    """The tasks of a listen's foreach (beside 'listen', not in it) get the semantic checks."""
    problems = _problems(
        """\
do:
  - l:
      listen:
        to:
          any: []
      foreach:
        do:
          - post:
              call: notify
              then: nowhere
"""
    )
    assert [p.rsplit(" (", 1)[-1] for p in problems] == ["function-reference)", "then-target)"]
    assert problems[0].startswith("/do/0/l/foreach/do/0/post/call: calls function 'notify'")


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
    """run.shell, run.script and run.container are refused unless the options allow them."""
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


MCP_STDIO_TASK = """\
do:
  - ask:
      call: mcp
      with:
        method: tools/list
        transport:
          stdio:
            command: my-mcp-server
  - remote:
      call: mcp
      with:
        method: tools/list
        transport:
          http:
            endpoint: https://mcp.example.com/mcp
"""


def test_mcp_stdio_needs_its_setting_and_a_namespace_allowed_processes() -> None:
    """An MCP server over stdio is refused unless enabled (naming the setting), then unless
    the namespace may start processes; the http transport needs neither."""
    assert _problems(MCP_STDIO_TASK) == [
        "/do/0/ask/with/transport/stdio: this service does not start MCP servers over stdio "
        "while workflows.calls.mcp.stdio is false (the default); set workflows.calls.mcp.stdio: "
        "true in the configuration, or use the http transport (mcp-stdio-disabled)"
    ]
    assert _problems(MCP_STDIO_TASK, ValidationOptions(allow_mcp_stdio=True)) == []
    refused = ValidationOptions(allow_mcp_stdio=True, process_allowed=lambda namespace: False)
    assert _problems(MCP_STDIO_TASK, refused) == [
        "/do/0/ask/with/transport/stdio: namespace 'test' may not start MCP servers over stdio "
        "(local processes); add it to workflows.run.namespaces in the configuration, or use the "
        "http transport (process-not-allowed)"
    ]
    # A disabled call kind is refused as a whole, once.
    disabled = ValidationOptions(enabled_calls=frozenset({"grpc", "asyncapi", "a2a"}))
    assert [p.rsplit(" (", 1)[-1] for p in _problems(MCP_STDIO_TASK, disabled)] == [
        "unsupported-call)",
        "unsupported-call)",
    ]


def test_all_problems_at_once() -> None:
    """Structural and semantic problems of one document are all reported together."""
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
""",
        ValidationOptions(enabled_calls=frozenset()),
    )
    assert [problem.rsplit(" (", 1)[-1] for problem in problems] == [
        "required)",
        "expression)",
        "then-target)",
        "unsupported-call)",
    ]


def test_report_keeps_unsupported_apart() -> None:
    """check_definition separates DSL problems from what this runtime will not run."""
    text = HEADER + (
        "do:\n  - sh:\n      run:\n        shell:\n          command: echo hi\n"
        "  - a:\n      set: {x: 1}\n      then: nowhere\n"
    )
    report = check_definition(load_document(text))
    assert not report.valid
    assert [p.rule for p in report.problems] == ["then-target"]
    assert [str(p) for p in report.unsupported] == [
        "/do/0/sh/run/shell: this service does not run run.shell while workflows.run.shell is "
        "false (the default); set workflows.run.shell: true in the configuration, or remove this "
        "task (shell-disabled)"
    ]
    shell_only = check_definition(load_document(text.split("  - a:")[0]))
    assert shell_only.valid
    assert [p.rule for p in shell_only.unsupported] == ["shell-disabled"]
    assert check_definition(load_document(HEADER + "do: []\n")) == ValidationReport()


def _official(schema: dict[str, object]) -> OfficialSchema:
    return OfficialSchema.from_document({"$id": SCHEMA_ID, **schema})


def test_official_schema_must_be_the_1_0_3_schema() -> None:
    """A schema document with another $id, or that is no JSON schema, is WrongSchema."""
    with pytest.raises(WrongSchema) as caught:
        OfficialSchema.from_document({"$id": "https://example.com/other.yaml"})
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == (
        "is not the Serverless Workflow 1.0.3 schema ($id is "
        "'https://example.com/other.yaml', expected "
        "'https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml')"
    )
    with pytest.raises(WrongSchema, match=r"^is not a valid JSON schema: "):
        _official({"type": 5})
    with pytest.raises(WrongSchema, match=r"\$id is None"):
        OfficialSchema.from_document(["not", "a", "mapping"])


def test_official_schema_is_an_extra_check() -> None:
    """With the schema option, what it refuses and the grammar does not is reported too."""
    schema = _official({"required": ["license"]})
    document = load_document(HEADER + "do: []\n")
    assert validate_definition(document) == []
    assert [
        str(p) for p in validate_definition(document, ValidationOptions(official_schema=schema))
    ] == [
        "/: the official schema refuses this: missing required property 'license'; add it "
        "(required)"
    ]
    broken = load_document(HEADER.replace("name: sample", "nam: sample") + "do: []\n")
    strict = ValidationOptions(
        official_schema=_official({"properties": {"document": {"required": ["name"]}}})
    )
    assert [str(p) for p in validate_definition(broken, strict)] == [
        "/document: the document needs 'name'; add it (required)",
        "/document/nam: unknown key 'nam'; did you mean 'name'? (unevaluatedProperties)",
    ]


def test_unreadable_bytes_are_one_line() -> None:
    """Bytes that are not text are one syntax problem on one line."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document(b"\x11\x00binary", filename="blob.yaml")
    [problem] = caught.value.problems
    assert problem.rule == "syntax" and "\n" not in problem.message
    assert problem.message.startswith("blob.yaml is not valid YAML or JSON: unacceptable character")


def test_values_without_json_form_are_refused() -> None:
    """Keys that are not strings and values of explicit YAML tags are one syntax problem."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document("do:\n  - 1: {set: {a: 1}}\n")
    assert [str(p) for p in caught.value.problems] == [
        "/do/0: the key 1 is not a string; JSON keys are strings, so quote it ('1':) (syntax)"
    ]
    with pytest.raises(InvalidDefinition) as caught:
        load_document("a: [ok, !!binary aGVsbG8=]\n")
    assert [str(p) for p in caught.value.problems] == [
        "/a/1: a YAML bytes has no JSON form; write it as a string, list or mapping (without an "
        "explicit tag such as !!binary, !!set or !!timestamp) (syntax)"
    ]
    with pytest.raises(InvalidDefinition) as caught:
        load_document("a: {b: .nan}\n")
    assert [str(p) for p in caught.value.problems] == [
        "/a/b: nan is not a JSON number; write a number (syntax)"
    ]


def test_alias_bomb_is_refused() -> None:
    """Nested YAML aliases that expand exponentially are refused quickly, not expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    with pytest.raises(InvalidDefinition) as caught:
        load_document("\n".join(lines) + "\n")
    assert [str(problem) for problem in caught.value.problems] == [
        "/: the definition expands to more than 4 MiB of JSON (through YAML aliases?), the "
        "limit set by definitions.maxExpandedSize; write the repeated parts out, make it "
        "smaller or raise the setting (size)"
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
