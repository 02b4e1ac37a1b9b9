"""Benchmark of runtime expressions and definition validation; prints figures, asserts nothing.

Run: ``.venv/bin/python benchmarks/dsl_expressions.py``. Figures are per process on one core;
the sandbox figures include the pipe round trip and JSON encoding of the inputs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jq
import trio

from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.expressions import (
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
)

DATA = {
    "order": {"id": "o-17", "total": 99.5, "items": [{"sku": "a", "qty": 2}, {"sku": "b"}]},
    "customer": {"name": "Ada", "tier": "gold"},
}
ARGUMENTS = {"input": DATA, "context": {"attempt": 1}, "workflow": {"id": "w-1"}}
SPEC_EXAMPLES = Path(__file__).resolve().parents[2] / "shared/spec/serverless-workflow-1.0.3"


async def _rate(label: str, call: Callable[[], Awaitable[Any]], seconds: float = 1.0) -> None:
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            await call()
        count += 100
    elapsed = time.perf_counter() - started
    print(f"{label:<58} {count / elapsed:>12,.0f} /s  {elapsed / count * 1e6:>9.1f} us")


def _sync_rate(label: str, call: Callable[[], Any], seconds: float = 1.0) -> None:
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            call()
        count += 100
    elapsed = time.perf_counter() - started
    print(f"{label:<58} {count / elapsed:>12,.0f} /s  {elapsed / count * 1e6:>9.1f} us")


async def _expressions(engine: ExpressionEngine) -> None:
    path = engine.compile("${ .order.id }")
    argument_path = engine.compile("${ $input.customer.name }")
    inline = engine.compile('${ {id: .order.id, big: (.order.total > 50), who: "x"} }')
    sandboxed = engine.compile("${ reduce .order.items[] as $item (0; . + ($item.qty // 1)) }")
    print(f"tiers: {path.tier}, {argument_path.tier}, {inline.tier}, {sandboxed.tier}")
    await _rate("fast path  ${ .order.id }", lambda: engine.evaluate(path, DATA, ARGUMENTS))
    await _rate(
        "fast path  ${ $input.customer.name }",
        lambda: engine.evaluate(argument_path, DATA, ARGUMENTS),
    )
    raw = jq.compile(".order.id")
    _sync_rate(
        "raw jq.py  .order.id (no engine, for comparison)", lambda: raw.input_value(DATA).first()
    )
    await _rate(
        "jq in-process (cheap)  {id:..., big:..., who:...}",
        lambda: engine.evaluate(inline, DATA, ARGUMENTS),
    )
    await _rate(
        "jq sandbox worker  reduce .order.items[] as $item (...)",
        lambda: engine.evaluate(sandboxed, DATA, ARGUMENTS),
    )

    async def four_concurrent() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(engine.evaluate, sandboxed, DATA, ARGUMENTS)

    await _rate("jq sandbox worker, 4 concurrent (x4 evaluations)", four_concurrent)
    _sync_rate("compile, cache hit", lambda: engine.compile("${ .order.id }"))
    counter = iter(range(10**9))
    _sync_rate(
        "compile, cache miss (new text each time)",
        lambda: engine.compile(f"${{ .order.id + {next(counter)} }}"),
        seconds=0.5,
    )


async def _runaway() -> None:
    limits = ExpressionLimits(cpu_seconds=0.2)
    async with open_expression_engine(limits) as engine:
        await engine.evaluate("${ [range(2)] }", None, {})  # start a worker
        for source in ("${ def f: f; f }", "${ [range(1e10)] }", '${ [limit(1e8; repeat("x"))] }'):
            started = time.perf_counter()
            try:
                await engine.evaluate(source, None, {})
            except ExpressionError as error:
                elapsed = time.perf_counter() - started
                print(f"runaway {source:<34} ended after {elapsed * 1000:7.1f} ms: {error.detail}")
        started = time.perf_counter()
        await engine.evaluate("${ [range(2)] }", None, {})
        elapsed = time.perf_counter() - started
        print(f"first evaluation after a kill (respawn)  {elapsed * 1000:.1f} ms")


def _validation() -> None:
    try:
        from workflow_orchestrator.dsl.validation import load_document, validate_definition
    except ImportError:
        print("validation: not available")
        return
    example = SPEC_EXAMPLES / "examples" / "try-catch-retry-reusable.yaml"
    if not example.exists():
        print(f"validation: {example} not found")
        return
    document = load_document(example.read_text())
    validate_definition(document)
    _sync_rate(f"validate_definition({example.name})", lambda: validate_definition(document))
    text = example.read_text()
    _sync_rate(
        f"load_document + validate_definition({example.name})",
        lambda: validate_definition(load_document(text)),
    )


async def main() -> None:
    """Print the figures."""
    async with open_expression_engine() as engine:
        await _expressions(engine)
    await _runaway()
    _validation()


if __name__ == "__main__":
    trio.run(main)
