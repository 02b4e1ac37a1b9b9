"""The DSL grammar: the schema's exact rules, written as code, and messages that say what to
change. (tests/conformance/test_schema_agreement.py proves it agrees with the official schema.)"""

from __future__ import annotations

from typing import Any

import pytest

from workflow_orchestrator.dsl.validation import STRUCTURAL_RULES, structural_problems

HEAD = {"dsl": "1.0.3", "namespace": "test", "name": "sample", "version": "0.1.0"}


def _workflow(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"document": dict(HEAD), "do": [{f"t{i}": task} for i, task in enumerate(tasks)], **top}


def _messages(document: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in structural_problems(document)]


def _call_http(endpoint: Any) -> dict[str, Any]:
    return {"call": "http", "with": {"method": "get", "endpoint": endpoint}}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"wait": "PT1S"}, []),
        ({"wait": "${ .delay }\n"}, []),
        ({"wait": "\xa0${ .delay }"}, []),  # \xa0 is Unicode White_Space, as for the schema
        (
            {"wait": "\x1c${ .delay }"},  # \x1c is not (Python's \s would say it is)
            [
                "/do/0/t0/wait: '\\x1c${ .delay }' is not a duration; write ISO 8601 such as "
                "PT30S or P1DT2H, a mapping such as {minutes: 1}, or a runtime expression "
                "(pattern)"
            ],
        ),
        (
            {"wait": "PT1S\n"},  # the schema's $ is the very end, not before a newline
            [
                "/do/0/t0/wait: 'PT1S\\n' is not a duration; write ISO 8601 such as PT30S or "
                "P1DT2H, a mapping such as {minutes: 1}, or a runtime expression (pattern)"
            ],
        ),
        ({"wait": {"seconds": 30.0}}, []),  # a whole float is a JSON integer
        (
            {"wait": {"seconds": True}},
            ["/do/0/t0/wait/seconds: must be a whole number, not true (type)"],
        ),
        (
            {"wait": {}},
            ["/do/0/t0/wait: must not be empty; an inline duration needs a key (minProperties)"],
        ),
        (
            {"wait": {"weeks": 1}},
            [
                "/do/0/t0/wait/weeks: unknown key 'weeks'; an inline duration has only days, "
                "hours, milliseconds, minutes, seconds; remove it or fix its spelling "
                "(unevaluatedProperties)"
            ],
        ),
        (
            {"set": {}},
            ["/do/0/t0/set: must not be empty; a set task's values needs a key (minProperties)"],
        ),
        (
            {"set": {"a": 1}, "call": "http"},
            [
                "/do/0/t0: a task has one type, and this one has 'call' and 'set'; keep one and "
                "move the others to tasks of their own (oneOf)"
            ],
        ),
        ({"for": {"in": "${ .items }"}, "do": [], "while": "${ true }"}, []),
        (
            {"do": [], "while": "${ true }"},
            [
                "/do/0/t0/while: unknown key 'while'; a do task has only do, export, if, input, "
                "metadata, output, then, timeout; remove it or fix its spelling "
                "(unevaluatedProperties)"
            ],
        ),
        (
            {"switch": []},
            ["/do/0/t0/switch: must have at least 1 item(s); add one (minItems)"],
        ),
        (
            {"call": "http", "with": {"method": "get", "endpoint": "/pets"}},
            [
                "/do/0/t0/with/endpoint: '/pets' is neither an absolute URI (such as "
                "https://example.com/path) nor a runtime expression ('${ ... }'); write one of "
                "them (pattern)"
            ],
        ),
        (
            {"call": "http", "with": {"method": "get", "endpoint": "https://x", "output": "raws"}},
            [
                "/do/0/t0/with/output: must be one of raw, content, response, not 'raws'; "
                "did you mean 'raw'? (enum)"
            ],
        ),
        ({"call": "myFunction", "with": {"anything": [1, 2]}}, []),
        (
            {"emit": {"event": {"with": {"source": "https://x", "type": "t", "time": "${ now }"}}}},
            [
                "/do/0/t0/emit/event/with/time: '${ now }' is a runtime expression, and the "
                "DSL 1.0.3 schema takes only a literal value here; write the value itself (not)"
            ],
        ),
    ],
)
def test_task_rules(task: dict[str, Any], expected: list[str]) -> None:
    """Each task rule refuses what the schema refuses, where it is, saying what to change."""
    assert _messages(_workflow(task)) == expected


def test_open_authentication_policy_needs_exactly_one_valid_scheme() -> None:
    """A policy in use.authentications is valid when exactly one scheme is (schema's oneOf)."""
    basic = {"username": "u", "password": "p"}

    def policy(value: Any) -> list[str]:
        return _messages(_workflow({"wait": "PT1S"}, use={"authentications": {"p": value}}))

    assert policy({"basic": basic, "bearer": 5, "note": "kept"}) == []
    assert policy({"basic": basic, "bearer": {"token": "t"}}) == [
        "/use/authentications/p: a policy has one scheme; keep one of 'basic' or 'bearer' (oneOf)"
    ]
    assert policy({"basic": {"use": "secret", "username": "u"}}) == [
        "/use/authentications/p/basic/username: settings taken from a secret ('use') have "
        "nothing else; remove 'username', or remove 'use' to write the settings inline "
        "(unevaluatedProperties)"
    ]


def test_referenceable_authentication_has_one_key() -> None:
    """Where a policy may be a reference it is exactly 'use' or one scheme, nothing more."""
    assert _messages(
        _workflow(_call_http({"uri": "https://x", "authentication": {"use": ""}}))
    ) == ["/do/0/t0/with/endpoint/authentication/use: must not be empty; write a name (minLength)"]
    assert _messages(
        _workflow(
            _call_http(
                {"uri": "https://x", "authentication": {"use": "a", "bearer": {"token": "t"}}}
            )
        )
    ) == [
        "/do/0/t0/with/endpoint/authentication: an authentication has one key; keep one of "
        "'use' or 'bearer' (oneOf)"
    ]


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        ({"cleanup": "eventually", "after": "PT1H"}, []),
        ({"cleanup": "always"}, []),
        (
            {"cleanup": "eventually"},
            [
                "/do/0/t0/run/container/lifetime: cleanup: eventually needs 'after' (when to "
                "remove it); add it (required)"
            ],
        ),
        (
            {"cleanup": "never", "after": "PT1H"},
            [
                "/do/0/t0/run/container/lifetime/after: 'after' goes only with cleanup: "
                "eventually; remove it (not)"
            ],
        ),
    ],
)
def test_container_lifetime(lifetime: dict[str, Any], expected: list[str]) -> None:
    """'after' is needed with cleanup: eventually and refused otherwise (if/then/else)."""
    task = {"run": {"container": {"image": "alpine", "lifetime": lifetime}}}
    assert _messages(_workflow(task)) == expected


def test_consumption_strategy() -> None:
    """One of all/any/one; 'until' only with 'any', and not inside an 'until'."""
    one = {"with": {"type": "ping"}}

    def listen(strategy: dict[str, Any]) -> list[str]:
        return _messages(_workflow({"listen": {"to": strategy}}))

    assert listen({"any": [], "until": {"one": one}}) == []
    assert listen({"all": [one], "until": "${ true }"}) == [
        "/do/0/t0/listen/to/until: 'until' goes only with 'any'; remove it, or listen to 'any' "
        "events (unevaluatedProperties)"
    ]
    assert listen({"any": [], "until": {"any": [], "until": "${ true }"}}) == [
        "/do/0/t0/listen/to/until/until: the strategy of an 'until' has no 'until' of its own; "
        "remove it (not)"
    ]
    assert listen({"one": one, "all": []}) == [
        "/do/0/t0/listen/to: an event consumption strategy takes only one of 'all', 'any' or "
        "'one', and this one has 'all' and 'one'; keep one (oneOf)"
    ]


def test_document_names_and_top_level() -> None:
    """Names follow the schema's pattern (with a proposal); unknown top-level keys are allowed."""
    document = _workflow({"wait": "PT1S"}, x_notes="free")
    document["document"]["name"] = "order_processing"
    assert _messages(document) == [
        "/document/name: 'order_processing' is not a valid name: use 1 to 63 letters, digits "
        "and '-', starting and ending with a letter or digit, such as 'order-processing' "
        "(pattern)"
    ]


def test_task_list_items_have_one_name() -> None:
    """A task list item with two names is refused, and both tasks are still checked."""
    document = {"document": HEAD, "do": [{"a": {"wait": "PT1S"}, "b": {"wait": 5}}]}
    assert _messages(document) == [
        "/do/0: must be a mapping of one task name to its task; found 2 names ('a' and 'b'); "
        "give each its own item (maxProperties)",
        "/do/0/b/wait: must be a duration (an ISO 8601 string such as PT30S, or a mapping such "
        "as {seconds: 30}), not 5 (type)",
    ]


def _grpc_port(port: int) -> dict[str, Any]:
    service = {"name": "s", "host": "grpc.example.com", "port": port}
    return {
        "call": "grpc",
        "with": {"proto": {"endpoint": "https://x"}, "method": "m", "service": service},
    }


def test_rules_are_structural() -> None:
    """Every rule the grammar reports is in STRUCTURAL_RULES (how they are told apart)."""
    document = _workflow(
        {"wait": 5},
        {"call": "http"},
        {"sett": 1},
        {"switch": []},
        {"set": {}},
        {"set": 1, "wait": 1},
        {"run": {"container": {"image": "i", "lifetime": {"cleanup": "never", "after": "PT1S"}}}},
        {
            "call": "grpc",
            "with": {
                "proto": {"endpoint": "https://x"},
                "method": "m",
                "service": {"name": "s", "host": "-", "port": -1},
            },
        },
        {"raise": {"error": {"type": "https://x", "status": 1, "instance": "${ x }"}}},
        {
            "call": "http",
            "with": {
                "method": "get",
                "endpoint": {"uri": "https://x", "authentication": {"use": ""}},
            },
        },
        {"listen": {"to": {"any": [], "read": "data"}, "read": "everything"}},
        {"switch": [{"a": {"then": "end"}, "b": {"then": "end", "when": "${ true }"}}]},
        {"wait": {"days": 1}, "timeout": {"after": {"days": 10**6}}, "metadata": {"port": 1}},
    )
    document["do"].append({"grpc": _grpc_port(70000)})
    rules = {problem.rule for problem in structural_problems(document)}
    assert rules == STRUCTURAL_RULES
