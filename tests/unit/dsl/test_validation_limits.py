"""The limits of reading and checking one definition: bytes after aliases, expressions, time."""

from __future__ import annotations

import pytest

from workflow_orchestrator.dsl.validation import (
    Deadline,
    InvalidDefinition,
    ValidationOptions,
    check_definition,
    load_data,
    load_document,
)

HEADER = "document: {dsl: '1.0.3', namespace: test, name: sample, version: '0.1.0'}\n"


def _wide_aliases() -> str:
    """About 14 KB of YAML whose aliases write out to about 150 MB of JSON (151,601 values)."""
    return (
        f'line: &line "{"x" * 1000}"\n'
        f"block: &block [{', '.join(['*line'] * 100)}]\n"
        f"all: [{', '.join(['*block'] * 1500)}]\n"
    )


def _tasks(count: int, expression: str = "${{ .a{i} + {i} }}") -> str:
    lines = [HEADER.rstrip("\n"), "do:"]
    for i in range(count):
        lines.append(f"  - t{i}:\n      set:\n        v: {expression.format(i=i)}")
    return "\n".join(lines) + "\n"


def test_aliases_are_counted_in_bytes_not_values() -> None:
    """Few values that aliases write out to 150 MB are refused, naming the limit and setting."""
    text = _wide_aliases()
    assert len(text) < 15_000
    with pytest.raises(InvalidDefinition) as caught:
        load_document(text)
    assert [str(problem) for problem in caught.value.problems] == [
        "/: the definition expands to more than 4 MiB of JSON (through YAML aliases?), the limit "
        "set by definitions.maxExpandedSize; write the repeated parts out, make it smaller or "
        "raise the setting (size)"
    ]


def test_the_expanded_size_limit_can_be_raised() -> None:
    """The same aliases fit once the limit is raised, and a small one refuses plain text too."""
    text = 'line: &line "' + "x" * 1000 + '"\nblock: [' + ", ".join(["*line"] * 100) + "]\n"
    assert len(load_document(text, max_expanded_size=200_000)["block"]) == 100
    with pytest.raises(InvalidDefinition) as caught:
        load_document(text, max_expanded_size=50_000)
    assert caught.value.problems[0].message.startswith(
        "the definition expands to more than 50,000 bytes of JSON"
    )


def test_remote_documents_name_their_own_setting() -> None:
    """load_data reads any top level and names the setting its caller gives."""
    assert load_data("[1, 2]", what="the schema x") == [1, 2]
    with pytest.raises(InvalidDefinition) as caught:
        load_data(
            _wide_aliases(),
            what="the schema https://example.com/s.yaml",
            max_expanded_size=10 * 1024 * 1024,
            size_setting="workflows.maxDocumentSize",
        )
    assert caught.value.problems[0].message == (
        "the schema https://example.com/s.yaml expands to more than 10 MiB of JSON (through YAML "
        "aliases?), the limit set by workflows.maxDocumentSize; write the repeated parts out, "
        "make it smaller or raise the setting"
    )


def test_integers_python_will_not_convert_are_a_syntax_problem() -> None:
    """A number of 5,000 digits is one syntax problem, in YAML and in JSON, not a crash."""
    for text in ("a: " + "1" * 5000 + "\n", '{"a": ' + "1" * 5000 + "}"):
        with pytest.raises(InvalidDefinition) as caught:
            load_document(text)
        [problem] = caught.value.problems
        assert problem.rule == "syntax"
        assert problem.message.startswith("the definition is not valid YAML or JSON: Exceeds")


def test_json_nested_100000_deep_is_one_problem() -> None:
    """JSON nested far deeper than Python recurses is refused with one line."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    [problem] = caught.value.problems
    assert problem.rule == "syntax"
    assert "exceeded maximum nesting depth" in problem.message


def test_json_is_read_like_yaml() -> None:
    """The JSON fast path gives what the YAML loader gives, and refuses what JSON cannot hold."""
    text = '{"document": {"dsl": "1.0.3"}, "on": true, "n": 1.5e3, "s": "a\\u00e9"}'
    assert load_document(text) == {"document": {"dsl": "1.0.3"}, "on": True, "n": 1500.0, "s": "aé"}
    with pytest.raises(InvalidDefinition) as caught:
        load_document('{"a": 1e400}')
    assert [str(p) for p in caught.value.problems] == [
        "/a: inf is not a JSON number; write a number (syntax)"
    ]


def test_expressions_are_capped() -> None:
    """Past max_expressions the check stops with one limit problem where the cap was passed."""
    options = ValidationOptions(max_expressions=20)
    report = check_definition(load_document(_tasks(30)), options)
    assert [str(problem) for problem in report.problems] == [
        "/do/20/t20/set/v: the definition has more than 20 runtime expressions, the limit set "
        "by definitions.maxExpressions; split it into subflows or raise the setting (limit)"
    ]
    assert check_definition(load_document(_tasks(20)), options).valid


def test_validation_stops_at_its_deadline() -> None:
    """A validation past its deadline ends with one limit problem naming the setting."""
    report = check_definition(load_document(_tasks(5)), ValidationOptions(timeout=0.0))
    assert [str(problem) for problem in report.problems] == [
        "/: validating the definition takes longer than 0s, the limit set by "
        "definitions.validationTimeout; make it smaller (for a definition: fewer tasks and "
        "expressions, or subflows) or raise the setting (limit)"
    ]


def test_loading_looks_at_the_deadline() -> None:
    """Building a large YAML document stops at an expired deadline."""
    with pytest.raises(InvalidDefinition) as caught:
        load_document(_tasks(3000, "{i}"), deadline=Deadline.after(0.0))
    assert [problem.rule for problem in caught.value.problems] == ["limit"]
    assert "definitions.validationTimeout" in caught.value.problems[0].message


def test_long_task_lists_keep_messages_short() -> None:
    """A then naming no sibling lists ten names at most, however long the list."""
    text = _tasks(30, "{i}").replace("        v: 0\n", "        v: 0\n      then: nowhere\n", 1)
    [problem] = check_definition(load_document(text)).problems
    assert problem.message == (
        "then refers to task 'nowhere', which is not in the same task list; use one of "
        "['t0', 't1', 't10', 't11', 't12', 't13', 't14', 't15', 't16', 't17'] and 20 more or "
        "continue, exit, end"
    )
