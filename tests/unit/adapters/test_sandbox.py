"""The expression sandbox: runaway programs end, the event loop stays free, workers are replaced."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from workflow_orchestrator.adapters import SandboxPool, open_expression_engine, open_sandbox
from workflow_orchestrator.dsl.expressions import (
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
)

BUDGET = ExpressionLimits(cpu_seconds=0.2)
CPU_MESSAGE = (
    "used more than 0.2 s of CPU time; "
    "simplify the expression or raise workflows.expressions.cpuBudget"
)


@pytest.fixture
async def engine() -> AsyncIterator[ExpressionEngine]:
    async with open_expression_engine(BUDGET) as engine:
        yield engine


@pytest.mark.parametrize(
    "source",
    [
        "${ def f: f; f }",
        "${ [range(1e10)] }",
        "${ [repeat(1)] }",
        '${ [limit(1e9; repeat("xxxxxxxxxx"))] | add | length }',
        "${ last(range(1e12)) }",
        "${ 0 | [recurse(. + 1)] }",
        '${ "x" * 100000000 | length }',
        "${ 0 | until(. < 0; . + 1) }",
    ],
)
async def test_runaway_expressions_end_within_the_budget(
    engine: ExpressionEngine, source: str
) -> None:
    """A runaway evaluation ends with the spec's expression error after its CPU budget."""
    with trio.fail_after(5), pytest.raises(ExpressionError) as caught:
        await engine.evaluate(source, {}, {})
    assert caught.value.detail == CPU_MESSAGE
    assert caught.value.status == 400


async def test_event_loop_keeps_running_during_a_runaway(engine: ExpressionEngine) -> None:
    """Other Trio tasks make progress while a runaway expression burns its budget."""
    ticks = 0
    done = trio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await trio.sleep(0.01)
            ticks += 1

    async def runaway() -> None:
        with pytest.raises(ExpressionError):
            await engine.evaluate("${ def f: f; f }", {}, {})
        done.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            nursery.start_soon(runaway)
    assert ticks >= 5


async def test_other_evaluations_proceed_during_a_runaway() -> None:
    """Cheap and sandboxed evaluations complete while another worker runs away."""
    async with open_expression_engine(ExpressionLimits(cpu_seconds=30)) as engine:
        runaway_ended = False

        async def runaway() -> None:
            nonlocal runaway_ended
            with pytest.raises(ExpressionError):
                await engine.evaluate("${ def f: f; f }", {}, {})
            runaway_ended = True

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runaway)
                await trio.sleep(0.05)
                results = [
                    await engine.evaluate("${ .a + 1 }", {"a": 1}, {}),
                    await engine.evaluate("${ reduce .[] as $x (0; . + $x) }", [1, 2], {}),
                ]
                assert not runaway_ended
                nursery.cancel_scope.cancel()
        assert results == [2, 3]
        assert await engine.evaluate("${ [range(2)] | length }", {}, {}) == 2


async def test_worker_is_replaced_after_a_kill(engine: ExpressionEngine) -> None:
    """The next sandboxed evaluation after a runaway works (a fresh worker)."""
    with pytest.raises(ExpressionError):
        await engine.evaluate("${ def f: f; f }", {}, {})
    assert await engine.evaluate("${ [range(3)] }", {}, {}) == [0, 1, 2]


async def test_output_size_cap() -> None:
    """A result larger than max_output_bytes is an expression error naming both sizes."""
    limits = ExpressionLimits(cpu_seconds=2, max_output_bytes=1000)
    async with open_expression_engine(limits) as engine:
        with pytest.raises(ExpressionError) as caught:
            await engine.evaluate('${ "x" * 2000 }', {}, {})
        assert caught.value.detail == (
            "produced 2002 bytes of output, more than the limit of 1000; make the result smaller "
            "or raise workflows.expressions.maxOutputSize"
        )
        assert await engine.evaluate('${ "x" * 10 }', {}, {}) == "x" * 10


@pytest.mark.skipif(sys.platform != "linux", reason="the memory cap reads /proc/self/status")
async def test_memory_cap() -> None:
    """An evaluation that allocates past max_memory_bytes is an expression error."""
    limits = ExpressionLimits(cpu_seconds=5, max_memory_bytes=64 * 1024 * 1024)
    async with open_expression_engine(limits) as engine:
        with trio.fail_after(10), pytest.raises(ExpressionError) as caught:
            await engine.evaluate('${ "x" * 100000000 | length }', {}, {})
        assert caught.value.detail == (
            "needed more than 67108864 bytes of memory; "
            "simplify the expression, reduce the data it builds or raise "
            "workflows.expressions.maxMemory"
        )


async def test_more_concurrent_evaluations_than_workers(engine: ExpressionEngine) -> None:
    """Evaluations beyond the pool size wait their turn and all complete."""
    results: dict[int, object] = {}

    async def one(number: int) -> None:
        results[number] = await engine.evaluate("${ [range(.)] | length }", number, {})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for number in range(10):
                nursery.start_soon(one, number)
    assert results == {number: number for number in range(10)}


async def test_cancelled_evaluation_does_not_poison_the_pool(engine: ExpressionEngine) -> None:
    """Cancelling a caller mid-evaluation kills its worker; later evaluations are right."""
    with trio.move_on_after(0.05):
        await engine.evaluate("${ [repeat(1)] }", {}, {})
    assert await engine.evaluate("${ [range(2)] | length }", {}, {}) == 2


async def test_aclose_stops_the_workers() -> None:
    """aclose ends the idle workers (they exit on their own) and refuses later evaluations."""
    pool = SandboxPool(BUDGET)
    engine = ExpressionEngine(sandbox=pool)
    await engine.evaluate("${ [range(2)] }", {}, {})
    (worker,) = pool._idle
    await pool.aclose()
    assert pool.is_closed()
    assert worker.process.returncode == 0
    with pytest.raises(RuntimeError, match="the expression sandbox is closed; open a new one"):
        await engine.evaluate("${ [range(2)] }", {}, {})
    assert await engine.evaluate("${ .a }", {"a": 1}, {}) == 1


async def test_open_sandbox_starts_workers_lazily_and_stops_them() -> None:
    """No worker starts before a sandboxed evaluation; leaving the block stops the pool."""
    async with open_sandbox(BUDGET) as pool:
        engine = ExpressionEngine(sandbox=pool)
        engine.compile("${ [range(2)] }")
        assert await engine.evaluate("${ .a + 1 }", {"a": 1}, {}) == 2
        assert pool.started == 0
        assert await engine.evaluate("${ [range(2)] }", {}, {}) == [0, 1]
        assert pool.started == 1
    assert pool.is_closed()


async def test_sandbox_reports_data_that_is_not_json() -> None:
    """A value JSON cannot encode is an expression error that names the problem."""
    async with open_sandbox(BUDGET) as pool:
        compiled = ExpressionEngine(sandbox=pool).compile("${ [range(2)] }")
        with pytest.raises(ExpressionError) as caught:
            await pool.evaluate(compiled, [float("nan")])
    assert caught.value.detail.startswith("the data is not JSON (")
    assert caught.value.detail.endswith("); pass JSON values only")
    assert pool.started == 0


async def test_definitions_take_turns_for_the_workers() -> None:
    """With one worker, a definition that queued twelve slow evaluations does not hold up
    another's four fast ones: those finish before the sixth slow one (first come first served
    would put them after all twelve)."""
    limits = ExpressionLimits(cpu_seconds=5, max_workers=1)
    done: list[str] = []
    async with open_expression_engine(limits) as engine:
        slow = engine.for_owner("definition:slow")
        fast = engine.for_owner("definition:fast")

        async def evaluate(view: ExpressionEngine, source: str, data: int, name: str) -> None:
            assert await view.evaluate(source, data, {}) == data
            done.append(name)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for index in range(12):
                    nursery.start_soon(
                        evaluate, slow, "${ [range(.)] | length }", 300_000, f"slow{index}"
                    )
                    await trio.testing.wait_all_tasks_blocked()
                for index in range(4):
                    nursery.start_soon(
                        evaluate, fast, "${ [range(.)] | length }", 2, f"fast{index}"
                    )
                    await trio.testing.wait_all_tasks_blocked()
    assert len(done) == 16
    last_fast = done.index("fast3")
    assert [name for name in done[:last_fast] if name.startswith("fast")] == [
        "fast0",
        "fast1",
        "fast2",
    ]
    assert sum(name.startswith("slow") for name in done[:last_fast]) <= 5


async def test_an_owner_queues_a_bounded_number_of_evaluations() -> None:
    """Beyond max_queued_per_owner an owner's evaluations wait for room (their inputs are not
    encoded yet), and all of them complete."""
    limits = ExpressionLimits(cpu_seconds=5, max_workers=1, max_queued_per_owner=3)
    results: list[int] = []
    async with open_sandbox(limits) as pool:
        engine = ExpressionEngine(sandbox=pool).for_owner("definition:busy")

        async def evaluate(number: int) -> None:
            results.append(await engine.evaluate("${ [range(.)] | length }", number, {}))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for number in range(20):
                    nursery.start_soon(evaluate, 50_000 + number)
                await trio.testing.wait_all_tasks_blocked()
                assert pool.waiting("definition:busy") == 2  # one runs, two wait, 17 wait for room
    assert sorted(results) == [50_000 + number for number in range(20)]


async def test_cheap_programs_over_large_inputs_run_in_the_sandbox() -> None:
    """A proven-cheap program runs in-process only over a small input; over a larger one it
    runs in a worker, under the CPU budget (split("") over 4 MB would hold the service)."""
    limits = ExpressionLimits(cpu_seconds=0.2, max_inline_input_bytes=1024)
    async with open_sandbox(limits) as pool:
        engine = ExpressionEngine(sandbox=pool, max_inline_input_bytes=1024)
        source = '${ .s | split("") | length }'
        assert engine.compile(source).tier == "inline"
        assert await engine.evaluate(source, {"s": "ab"}, {}) == 2
        assert await engine.evaluate("${ .s }", {"s": "x" * 5000}, {}) == "x" * 5000
        assert pool.started == 0
        assert await engine.evaluate(source, {"s": "x" * 5000}, {}) == 5000
        assert pool.started == 1
        with trio.fail_after(10), pytest.raises(ExpressionError):
            await engine.evaluate(source, {"s": "x" * 4_000_000}, {})


async def test_open_expression_engine_passes_the_inline_input_limit() -> None:
    """max_inline_input_bytes=0 sends every jq evaluation to the sandbox; plain paths stay."""
    async with open_expression_engine(ExpressionLimits(max_inline_input_bytes=0)) as engine:
        assert engine.compile("${ .a + 1 }").tier == "inline"
        pool = engine._sandbox
        assert isinstance(pool, SandboxPool)
        assert await engine.evaluate("${ .a }", {"a": 1}, {}) == 1
        assert pool.started == 0
        assert await engine.evaluate("${ .a + 1 }", {"a": 1}, {}) == 2
        assert pool.started == 1


async def test_a_result_nested_too_deep_is_an_expression_error(engine: ExpressionEngine) -> None:
    """jq builds nesting Python cannot convert: the evaluation fails, the worker lives on."""
    with pytest.raises(ExpressionError) as caught:
        await engine.evaluate("${ reduce range(0; 1200) as $i (0; [.]) }", {}, {})
    assert "nests too deep" in str(caught.value)
    assert await engine.evaluate("${ [.a] }", {"a": 1}, {}) == [1]
