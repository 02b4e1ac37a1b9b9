"""EXPLAIN (ANALYZE, BUFFERS) of the statements the service's storage functions send.

``ExplainingDatabase`` stands in for ``storage.Database`` (``run``, ``run_in_transaction``,
``fetch``, ``fetchval``, ``execute``, ``location``): the repository functions of the service
are called unchanged, and every statement they send is recorded with its arguments, explained,
then run for real so that the function goes on with real results. Everything a call does
happens in one transaction that is rolled back, so nothing it writes stays; each EXPLAIN runs in
a savepoint rolled back at once.

A statement is explained as a prepared statement (``PREPARE``, then ``EXECUTE`` six times),
because that is how the service runs it: asyncpg prepares every statement and reuses it, and
from the sixth execution on PostgreSQL may switch from a plan made for the arguments (custom)
to one made for any arguments (generic) when it looks no more expensive. The first and the
sixth are run with ``EXPLAIN (ANALYZE, BUFFERS)``; the four between are only planned (``EXPLAIN
EXECUTE``, which counts for the plan cache), so a write is run twice, not six times. The sixth
run of a write also walks the row versions the first one left (rolled back), so its time is a
little pessimistic. Whether the sixth plan was generic comes from ``pg_prepared_statements``.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio
import trio_asyncio

from workflow_orchestrator.storage import Connection, Database

T = TypeVar("T")

_STEADY_RUN = 6  # PostgreSQL's plan cache tries custom plans for the first five executions


class _Rollback(Exception):
    """Ends a savepoint on purpose."""


@dataclass
class PlanSummary:
    """One executed plan: its time, rows, buffers and the tree, one line per node."""

    execution_ms: float
    planning_ms: float
    rows: int
    shared_hit: int
    shared_read: int
    lines: list[str]
    seq_scans: list[str]
    indexes: list[str]

    @property
    def shape(self) -> str:
        """The tree without figures, to compare two plans."""
        return "\n".join(line.split(" rows=")[0] for line in self.lines)


@dataclass
class ExplainedStatement:
    """One statement a scenario sent, where its SQL lives, and its plans."""

    scenario: str
    origin: str
    sql: str
    custom: PlanSummary | None = None
    steady: PlanSummary | None = None
    steady_generic: bool = False
    error: str | None = None


def _nodes(node: dict[str, Any], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    yield depth, node
    for child in node.get("Plans", ()):
        yield from _nodes(child, depth + 1)


def _describe(node: dict[str, Any]) -> str:
    text = node["Node Type"]
    if node.get("Scan Direction") == "Backward":
        text += " Backward"
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    if "CTE Name" in node:
        text += f" [{node['CTE Name']}]"
    if node.get("Subplan Name"):
        text += f" ({node['Subplan Name']})"
    loops = node.get("Actual Loops", 1)
    rows = node.get("Actual Rows", 0)
    text += f" rows={rows}" + (f"x{loops}" if loops != 1 else "")
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    if removed:
        text += f" removed={removed}"
    if node.get("Sort Method"):
        text += f" sort={node['Sort Method']}"
    if node.get("Heap Fetches"):
        text += f" heap-fetches={node['Heap Fetches']}"
    return text


def summarize(explained: Any) -> PlanSummary:
    """The summary of one ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` result."""
    document = json.loads(explained) if isinstance(explained, str) else explained
    top = document[0]
    plan = top["Plan"]
    lines: list[str] = []
    seq_scans: list[str] = []
    indexes: list[str] = []
    for depth, node in _nodes(plan):
        lines.append("  " * depth + _describe(node))
        if node["Node Type"] == "Seq Scan":
            seq_scans.append(f"{node.get('Relation Name')} ({node.get('Actual Rows', 0)} rows)")
        if "Index Name" in node and node["Index Name"] not in indexes:
            indexes.append(node["Index Name"])
    return PlanSummary(
        execution_ms=float(top.get("Execution Time", 0.0)),
        planning_ms=float(top.get("Planning Time", 0.0)),
        rows=int(plan.get("Actual Rows", 0)),
        shared_hit=int(plan.get("Shared Hit Blocks", 0)),
        shared_read=int(plan.get("Shared Read Blocks", 0)),
        lines=lines,
        seq_scans=seq_scans,
        indexes=indexes,
    )


_UNKNOWN = "(benchmark)"


def _origin() -> str:
    """``storage/<module>.py <function>`` of the storage code that sends the statement."""
    for frame in inspect.stack(context=0):
        path = frame.filename.replace("\\", "/")
        if "/workflow_orchestrator/storage/" in path:
            where = path.split("/workflow_orchestrator/")[-1]
            name = frame.frame.f_code.co_qualname.replace("<locals>.", "")
            return f"{where} {name}"
    return _UNKNOWN


class _Recorder:
    """The connection handed to the storage code: explains, then runs, each statement."""

    def __init__(self, connection: Connection, owner: ExplainingDatabase, origin: str) -> None:
        self._connection = connection
        self._owner = owner
        self._origin = origin

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._owner.explain(self._connection, query, args, self._origin)
        return await self._connection.fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._owner.explain(self._connection, query, args, self._origin)
        return await self._connection.fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._owner.explain(self._connection, query, args, self._origin)
        return await self._connection.fetchval(query, *args, **kwargs)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if args or ";" not in query.strip().rstrip(";"):  # not a script of several statements
            await self._owner.explain(self._connection, query, args, self._origin)
        return await self._connection.execute(query, *args, **kwargs)


@dataclass(eq=False)
class ExplainingDatabase:
    """See the module docstring. ``scenario`` labels the statements recorded next."""

    database: Database
    connection: Connection
    scenario: str = ""
    explained: list[ExplainedStatement] = field(default_factory=list)
    skip: Callable[[str], bool] = lambda query: query.lstrip().upper().startswith("EXPLAIN")
    _lock: trio.Lock = field(default_factory=trio.Lock)
    _counter: int = 0

    @property
    def location(self) -> Any:
        return self.database.location

    async def run(self, work: Callable[[Any], Awaitable[T]], **_: Any) -> T:
        origin = _origin()  # here, on the Trio side, the storage function is on the stack
        async with self._lock:

            async def unit() -> T:
                transaction = self.connection.transaction()
                await transaction.start()
                try:
                    return await work(_Recorder(self.connection, self, origin))
                finally:
                    await transaction.rollback()

            result: T = await trio_asyncio.aio_as_trio(unit)()
            return result

    async def run_in_transaction(self, work: Callable[[Any], Awaitable[T]]) -> T:
        return await self.run(work)

    async def fetch(self, sql: str, *args: object, **_: Any) -> list[Any]:
        return await self.run(lambda c: c.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: object, **_: Any) -> Any:
        return await self.run(lambda c: c.fetchval(sql, *args))

    async def execute(self, sql: str, *args: object) -> str:
        result: str = await self.run(lambda c: c.execute(sql, *args))
        return result

    async def explain(
        self, connection: Connection, query: str, args: tuple[Any, ...], origin: str
    ) -> None:
        """Explain ``query`` with ``args`` as the service would run it (asyncio side);
        ``origin`` is the storage function that called ``run``."""
        if self.skip(query):
            return
        here = _origin()  # the storage closure that sends it, when it runs on this side
        record = ExplainedStatement(
            scenario=self.scenario, origin=here if here != _UNKNOWN else origin, sql=query
        )
        self.explained.append(record)
        self._counter += 1
        name = f"bench_explain_{self._counter}"
        try:
            statement = await connection.prepare(query)
            oids = [t.oid for t in statement.get_parameters()]
            types = [
                r[0]
                for r in await connection.fetch(
                    "SELECT format_type(o, NULL) FROM unnest($1::oid[]) WITH ORDINALITY AS u(o, i)"
                    " ORDER BY i",
                    oids,
                )
            ]
            literals = [
                f"{await connection.fetchval(f'SELECT quote_nullable(($1::{t})::text)', v)}::{t}"
                for v, t in zip(args, types, strict=True)
            ]
            declared = f"({', '.join(types)})" if types else ""
            await connection.execute(f"PREPARE {name}{declared} AS {query}")
            passed = f"({', '.join(literals)})" if literals else ""
            execute = f"EXECUTE {name}{passed}"
            analyze = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"
            try:
                record.custom = summarize(await _in_savepoint(connection, analyze))
                for _ in range(2, _STEADY_RUN):  # planned (and counted) only, not run
                    await connection.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
                record.steady = summarize(await _in_savepoint(connection, analyze))
                counts = await connection.fetchrow(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE name = $1",
                    name,
                )
                record.steady_generic = bool(counts and counts["generic_plans"] > 0)
            finally:
                await connection.execute(f"DEALLOCATE {name}")
        except Exception as exc:  # report it with the statement; the scenario goes on
            record.error = f"{type(exc).__name__}: {exc}"


async def _in_savepoint(connection: Connection, sql: str) -> Any:
    result: Any = None
    try:
        async with connection.transaction():
            result = await connection.fetchval(sql)
            raise _Rollback
    except _Rollback:
        pass
    return result


def print_statement(record: ExplainedStatement, *, sql_width: int = 150) -> None:
    """Print one explained statement: scenario, origin, SQL head, both plans."""
    print(f"\n== {record.scenario}  [{record.origin}]")
    print("   SQL: " + " ".join(record.sql.split())[:sql_width])
    if record.error is not None:
        print(f"   not explained: {record.error}")
        return
    custom, steady = record.custom, record.steady
    assert custom is not None
    assert steady is not None
    print(
        f"   first run: {custom.execution_ms:.2f} ms (planning {custom.planning_ms:.2f} ms), "
        f"{custom.rows} rows, buffers hit {custom.shared_hit} read {custom.shared_read}"
    )
    for line in custom.lines:
        print("     " + line)
    kind = "generic" if record.steady_generic else "custom"
    same = steady.shape == custom.shape
    print(
        f"   6th run ({kind} plan{', same shape' if same else ', DIFFERENT plan'}): "
        f"{steady.execution_ms:.2f} ms, {steady.rows} rows"
    )
    if not same:
        for line in steady.lines:
            print("     " + line)


def timed() -> Callable[[], float]:
    """A stopwatch: call the result for the seconds since ``timed()``."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
