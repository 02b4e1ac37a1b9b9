"""The expression engine: one per service; owns the compile cache, uses a sandbox it is given.

Evaluation by tier (see ``_compiled``): ``path`` reads the value in Python, ``inline`` runs jq
in the calling thread (the program is proven cheap, see ``_analysis``), ``sandbox`` hands the
program and its inputs to the ``ExpressionSandbox`` the engine was built with (the service's
runs worker processes that enforce the CPU and memory budget and are killed and replaced when
they blow it; the Trio task waits without blocking the event loop). An engine built without a
sandbox compiles everything and evaluates the path and inline tiers; a sandbox-tier evaluation
then raises ``RuntimeError`` (a wiring bug, not a user's mistake). Validation only compiles, so
``definitions validate`` needs no worker process.

"Proven cheap" is linear in the input, and linear is not small: ``split("")`` over a 4 MB
string runs for seconds. So the inline tier runs in-process only when its input (the data and
the arguments the program reads, estimated as JSON text, see ``_size``) is at most
``max_inline_input_bytes`` (64 KB); a larger input goes to the sandbox, under its CPU budget.
An engine without a sandbox runs such inputs in-process (it is for validation and tests).

Every evaluation that reaches the sandbox names its *owner*: the sandbox takes turns between
owners, so one definition with slow expressions cannot starve the others. ``for_owner`` gives
a view of the engine (same compile cache, same sandbox) whose evaluations belong to one owner;
the service makes one per definition (``instances.WorkflowCatalog``) and one for the event
router.

Result convention: a jq program yields a stream; no output gives ``None``, one output gives that
value, several outputs give the list of them.

Why this mechanism (measured on the 2-core development container, Python 3.11, jq.py 1.13;
``benchmarks/dsl_expressions.py`` reproduces the figures):

- A thread cannot contain a runaway: jq.py holds the GIL while jq runs. With
  ``[range(3e6)] | length`` (1.4 s) in a thread, the main thread got 1 of its 1 ms ticks in
  1.4 s; and a thread cannot be killed. Rejected.
- A process per evaluation costs ~25 ms (``python -c "import jq"``). Rejected.
- A persistent worker process costs ~120-230 us per evaluation (4,400-8,000/s per worker; a
  blocking pipe round trip to the same worker takes 25 us, the rest is Trio's
  ``wait_readable`` and scheduling), is killable, and can use the kernel to enforce a
  *CPU* budget (``ITIMER_PROF``, see ``workflow_orchestrator.adapters``) and a memory budget
  (``RLIMIT_AS``). Runaways with a 0.2 s budget (``def f: f; f``, ``[range(1e10)]``,
  ``[limit(1e8; repeat("x"))]``) end after 210-410 ms wall; a replacement worker starts in
  ~30 ms. Chosen for everything that is not proven cheap.
- In-process jq costs ~12 us for ``.order.id`` and ~18 us for a small object construction
  (55,000/s), so programs that static analysis proves cheap run in-process.
- The path fast path costs ~0.6 us (1,700,000/s): 20x faster than jq. ``evaluate`` being async
  adds ~0.3 us per call on this path, so there is no separate sync API.
- ``compile`` costs ~1.2 ms per new text (jq compiles its builtins each time) and ~0.1 us on a
  cache hit; the cache keeps the last 10,000 texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._lru import LruCache
from ._compiled import CompiledExpression, compile_expression, is_runtime_expression
from ._errors import ExpressionError, jq_detail
from ._paths import PathMiss, read_plain_path
from ._sandbox import ExpressionSandbox
from ._size import json_size_exceeds

_CACHE_SIZE = 10_000
DEFAULT_MAX_INLINE_INPUT_BYTES = 64 * 1024


def collapse(outputs: list[Any]) -> Any:
    """Apply the result convention to jq's output stream."""
    if not outputs:
        return None
    if len(outputs) == 1:
        return outputs[0]
    return outputs


def jq_input(compiled: CompiledExpression, data: Any, arguments: Mapping[str, Any]) -> list[Any]:
    """The value fed to the wrapped program: the data and the arguments it reads."""
    if not compiled.arguments:
        return [data]
    return [data, {name: arguments.get(name) for name in compiled.arguments}]


class ExpressionEngine:
    """Compiles, caches and evaluates runtime expressions.

    Create one per service; it is safe to share between all instances and Trio tasks.
    ``sandbox`` runs the programs that are not proven cheap; its owner opens and closes it
    (``workflow_orchestrator.adapters.open_expression_engine`` builds both). Without one the
    engine compiles and evaluates the path and inline tiers only. The engine itself holds no
    resource: there is nothing to close.
    """

    def __init__(
        self,
        *,
        sandbox: ExpressionSandbox | None = None,
        max_inline_input_bytes: int = DEFAULT_MAX_INLINE_INPUT_BYTES,
        owner: str = "",
    ) -> None:
        self._sandbox = sandbox
        self._max_inline_input_bytes = max_inline_input_bytes
        self._cache: LruCache[str, CompiledExpression | ExpressionError] = LruCache(_CACHE_SIZE)
        self.owner = owner

    def for_owner(self, owner: str) -> ExpressionEngine:
        """This engine for evaluations that belong to ``owner`` (a definition id, or a part
        of the service): the same compile cache and sandbox; the sandbox queues fairly per
        owner."""
        view = ExpressionEngine(
            sandbox=self._sandbox, max_inline_input_bytes=self._max_inline_input_bytes, owner=owner
        )
        view._cache = self._cache
        return view

    def compile(self, source: str) -> CompiledExpression:
        """Compile ``source`` (``${ ... }`` strict or bare jq text), from the cache if seen.

        Raises ``ExpressionError`` for a syntax error or a forbidden builtin.
        """
        cached = self._cache.get(source)
        if cached is None:
            try:
                cached = compile_expression(source)
            except ExpressionError as error:
                cached = error
            self._cache.put(source, cached)
        if isinstance(cached, ExpressionError):
            raise ExpressionError(cached.expression, cached.detail)
        return cached

    async def evaluate(
        self,
        source_or_compiled: str | CompiledExpression,
        data: Any,
        arguments: Mapping[str, Any],
    ) -> Any:
        """Evaluate an expression over ``data`` with ``arguments`` (names without ``$``).

        Raises ``ExpressionError`` when the program fails on this data or blows the budget,
        and ``RuntimeError`` when it needs the sandbox and the engine has none (or it is closed).
        """
        compiled = (
            source_or_compiled
            if isinstance(source_or_compiled, CompiledExpression)
            else self.compile(source_or_compiled)
        )
        if compiled.plain_path is not None:
            try:
                return read_plain_path(compiled.plain_path, data, arguments)
            except PathMiss:
                pass  # jq decides what a miss means (an error, or null)
        if compiled.tier != "sandbox":
            value = jq_input(compiled, data, arguments)
            if self._sandbox is None or not json_size_exceeds(value, self._max_inline_input_bytes):
                return self._evaluate_inline(compiled, value)
            return collapse(await self._sandbox.evaluate(compiled, value, owner=self.owner))
        if self._sandbox is None:
            raise RuntimeError(
                f"expression {compiled.source!r} needs the sandbox and this engine has none; "
                "build the engine with a sandbox (workflow_orchestrator.adapters"
                ".open_expression_engine)"
            )
        value = jq_input(compiled, data, arguments)
        return collapse(await self._sandbox.evaluate(compiled, value, owner=self.owner))

    def _evaluate_inline(self, compiled: CompiledExpression, value: list[Any]) -> Any:
        try:
            outputs = compiled._jq.input_value(value).all()
        except TypeError as error:
            raise ExpressionError(
                compiled.source, f"the data is not JSON ({error}); pass JSON values only"
            ) from None
        except RecursionError:
            raise ExpressionError(
                compiled.source, "the data or the result is nested too deeply to convert"
            ) from None
        except ValueError as error:
            raise ExpressionError(compiled.source, jq_detail(error)) from None
        return collapse(outputs)

    async def evaluate_template(self, value: Any, data: Any, arguments: Mapping[str, Any]) -> Any:
        """Copy ``value``, replacing every strict ``${ ... }`` string by its result.

        Walks mappings (values only; keys stay as written) and lists; other values are
        returned unchanged. Errors propagate as ``ExpressionError``.
        """
        if isinstance(value, str):
            if is_runtime_expression(value):
                return await self.evaluate(value, data, arguments)
            return value
        if isinstance(value, Mapping):
            return {
                key: await self.evaluate_template(item, data, arguments)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [await self.evaluate_template(item, data, arguments) for item in value]
        return value
