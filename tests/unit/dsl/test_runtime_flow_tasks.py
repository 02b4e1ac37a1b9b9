"""do, set, switch, for, fork, raise and wait."""

from __future__ import annotations

import trio
import trio.testing

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import InMemoryEffects, Interpreter


async def test_set_replaces_the_data() -> None:
    """``set`` outputs exactly the evaluated object."""
    result, _ = await run("do:\n  - s:\n      set:\n        b: ${ .a }\n", {"a": 1, "c": 2})
    assert result.output == {"b": 1}


async def test_switch_default_case_and_no_match() -> None:
    """A case without ``when`` is the default; with no match the data passes through."""
    body = """
    do:
      - route:
          switch:
            - big: {when: .n > 10, then: large}
            - fallback: {then: small}
      - large: {set: {size: large}, then: end}
      - small: {set: {size: small}}
    """
    assert (await run(body, {"n": 50}))[0].output == {"size": "large"}
    assert (await run(body, {"n": 1}))[0].output == {"size": "small"}


async def test_for_exposes_item_and_index_and_feeds_each_iteration() -> None:
    """Each iteration sees $item/$index (or custom names) and the previous iteration's output."""
    result, _ = await run(
        """
        do:
          - loop:
              for: {each: word, in: .words, at: i}
              do:
                - join:
                    set:
                      text: '${ .text + (if $i > 0 then " " else "" end) + $word }'
        """,
        {"words": ["durable", "workflows"], "text": ""},
    )
    assert result.output == {"text": "durable workflows"}


async def test_for_over_a_non_array_is_a_validation_error() -> None:
    """``for.in`` must evaluate to an array; the message says what it got."""
    result, _ = await run(
        "do:\n  - loop:\n      for: {in: .n}\n      do:\n        - x: {set: {a: 1}}\n", {"n": 3}
    )
    assert result.error is not None
    assert result.error.detail == "'for.in' must evaluate to an array, got int"


async def test_fork_runs_branches_concurrently(autojump_clock: trio.testing.MockClock) -> None:
    """Two 10 s waits in a fork take 10 s, and outputs keep branch order."""
    effects = InMemoryEffects()
    result, _ = await run(
        """
        do:
          - both:
              fork:
                branches:
                  - a: {wait: PT10S, output: {as: '"a"'}}
                  - b: {wait: PT10S, output: {as: '"b"'}}
        """,
        effects=effects,
    )
    assert result.output == ["a", "b"]
    assert effects.now().isoformat() == "2026-01-01T00:00:10+00:00"


async def test_fork_compete_cancels_the_losers(autojump_clock: trio.testing.MockClock) -> None:
    """With ``compete`` the fastest branch wins and the slower one never completes."""
    result, effects = await run(
        """
        do:
          - race:
              fork:
                compete: true
                branches:
                  - slow: {wait: PT1H, output: {as: '"slow"'}}
                  - fast: {wait: PT1S, output: {as: '"fast"'}}
        """
    )
    assert result.output == "fast"
    completed = [
        r.data["data"]["task"]
        for r in effects.log
        if r.kind == "lifecycle" and r.data["type"].endswith("task.completed.v1")
    ]
    assert "/do/0/race/fork/branches/0/slow" not in completed


async def test_fork_branch_error_faults_the_fork(autojump_clock: trio.testing.MockClock) -> None:
    """An error in one branch cancels the others and faults with that branch's error."""
    result, _ = await run(
        """
        do:
          - both:
              fork:
                branches:
                  - ok: {wait: PT1M}
                  - boom:
                      raise:
                        error: {type: https://x/boom, status: 500}
        """
    )
    assert result.error is not None
    assert result.error.type == "https://x/boom"
    assert result.error.instance == "/do/0/both/fork/branches/1/boom"


async def test_raise_evaluates_expressions_and_sets_the_instance() -> None:
    """Error fields may be expressions; ``instance`` defaults to the task pointer."""
    result, _ = await run(
        """
        do:
          - reject:
              raise:
                error:
                  type: https://example.com/errors/rejected
                  status: 422
                  title: Rejected
                  detail: ${ "order \\(.id) was rejected" }
        """,
        {"id": 7},
    )
    assert result.error is not None
    assert result.error.to_json() == {
        "type": "https://example.com/errors/rejected",
        "status": 422,
        "title": "Rejected",
        "detail": "order 7 was rejected",
        "instance": "/do/0/reject",
    }


async def test_wait_records_its_absolute_due_time(autojump_clock: trio.testing.MockClock) -> None:
    """The wait's due time is in the checkpoint before the timer sleeps."""
    effects = InMemoryEffects(record_snapshots=True)
    await run("do:\n  - pause: {wait: PT90S}\n", effects=effects)
    waiting = next(s for s in effects.snapshots if "/do/0/pause/!wait" in s["frames"])
    assert waiting["frames"]["/do/0/pause/!wait"] == {"due": "2026-01-01T00:01:30Z"}
    assert waiting["active"] == {"/do/0/pause": "/do/0/pause"}


async def test_waiting_instances_checkpoint_as_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While a timer runs the state says ``waiting``; afterwards ``running`` then completed."""
    effects = InMemoryEffects(record_snapshots=True)
    result, _ = await run(
        "do:\n  - pause: {wait: PT1S}\n  - after: {set: {a: 1}}\n", effects=effects
    )
    statuses = [s["status"] for s in effects.snapshots]
    assert "waiting" in statuses
    assert statuses[statuses.index("waiting") + 1] == "running"
    assert result.state.status == "completed"


async def test_constant_set_output_is_not_shared_between_instances() -> None:
    """A constant ``set`` skips expression evaluation but hands each instance its own copy."""
    definition = document("do:\n  - s:\n      set:\n        tags: [a]\n")
    interpreter = Interpreter(load_workflow(definition), ExpressionEngine())
    first = await interpreter.start(InMemoryEffects())
    first.output["tags"].append("mutated")
    second = await interpreter.start(InMemoryEffects())
    assert second.output == {"tags": ["a"]}
