"""Builds the typed model from a definition document that passed the structural checks.

The grammar (``dsl.validation``) guarantees the shape the builder indexes into; the references
it resolves are checked there too, and are ``ModelError`` here only for callers that skip it.

Reusable components (``use.errors``, ``use.retries``, ``use.timeouts``, ``use.functions``) are
resolved here, once, so the interpreter never looks names up while running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.model._duration import InvalidDuration, build_duration
from workflow_orchestrator.dsl.model._tasks import (
    EMPTY,
    CallTask,
    Catch,
    ConsumptionStrategy,
    DataFilter,
    DoTask,
    EmitTask,
    EventFilter,
    Extension,
    ForkTask,
    ForTask,
    ListenTask,
    RaiseTask,
    RetryPolicy,
    RunTask,
    Schedule,
    SchemaRef,
    SetTask,
    SubscriptionIterator,
    SwitchCase,
    SwitchTask,
    Task,
    TaskList,
    Timeout,
    TryTask,
    WaitTask,
    Workflow,
)
from workflow_orchestrator.errors import OrchestratorError

_TASK_KEYS = ("call", "do", "fork", "emit", "for", "listen", "raise", "run", "set", "switch")
# The task types an extension's ``extend`` names (``composite`` was ``do``/``fork``'s name).
_EXTENDS = {"composite": frozenset({"do", "fork"})}


class ModelError(OrchestratorError, ValueError):
    """A definition the model cannot represent; ``pointer`` locates the offending part."""

    def __init__(self, pointer: str, message: str) -> None:
        self.pointer = pointer
        self.message = message
        super().__init__(f"{pointer}: {message}")


def _is_external(call: str) -> bool:
    """Cataloged (``name:1.0@catalog``) or remote (a URI) functions, resolved at run time."""
    return "@" in call or "://" in call


def _has_expression(value: Any) -> bool:
    """Whether a template holds a string that looks like a runtime expression."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class _Builder:
    def __init__(self, document: Mapping[str, Any]) -> None:
        use = document.get("use") or EMPTY
        self.errors: Mapping[str, Any] = use.get("errors") or EMPTY
        self.retries: Mapping[str, Any] = use.get("retries") or EMPTY
        self.timeouts: Mapping[str, Any] = use.get("timeouts") or EMPTY
        self.functions: Mapping[str, Any] = use.get("functions") or EMPTY
        self._resolving: set[str] = set()

    def duration(self, pointer: str, value: Any) -> Any:
        try:
            return build_duration(value)
        except InvalidDuration as exc:
            raise ModelError(pointer, str(exc)) from None

    def timeout(self, pointer: str, value: Any) -> Timeout | None:
        if value is None:
            return None
        if isinstance(value, str):
            if value not in self.timeouts:
                raise ModelError(
                    pointer, f"timeout {value!r} is not declared; declared: {sorted(self.timeouts)}"
                )
            value = self.timeouts[value]
        return Timeout(after=self.duration(pointer + "/after", value["after"]))

    @staticmethod
    def data_filter(value: Mapping[str, Any] | None, key: str) -> DataFilter | None:
        if not value:
            return None
        schema = value.get("schema")
        ref = None
        if schema is not None:
            ref = SchemaRef(
                document=schema.get("document"),
                resource=schema.get("resource"),
                format=schema.get("format", "json"),
            )
        return DataFilter(expression=value.get(key), schema=ref)

    def task_list(self, pointer: str, items: Any) -> TaskList:
        tasks: list[Task] = []
        positions: dict[str, int] = {}
        for index, item in enumerate(items or ()):
            ((name, body),) = item.items()
            tasks.append(self.task(f"{pointer}/{index}/{_escape(name)}", name, body))
            positions.setdefault(name, index)
        return TaskList(reference=pointer, tasks=tuple(tasks), positions=positions)

    def task(self, pointer: str, name: str, body: Mapping[str, Any]) -> Task:
        common: dict[str, Any] = {
            "name": name,
            "reference": pointer,
            "raw": body,
            "if_": body.get("if"),
            "input": self.data_filter(body.get("input"), "from"),
            "output": self.data_filter(body.get("output"), "as"),
            "export": self.data_filter(body.get("export"), "as"),
            "timeout": self.timeout(pointer + "/timeout", body.get("timeout")),
            "then": body.get("then"),
        }
        if "try" in body:
            return TryTask(
                **common,
                try_=self.task_list(pointer + "/try", body["try"]),
                catch=self.catch(pointer + "/catch", body.get("catch") or EMPTY),
            )
        if "wait" in body:
            return WaitTask(**common, duration=self.duration(pointer + "/wait", body["wait"]))
        if "for" in body:
            spec = body["for"]
            return ForTask(
                **common,
                each=spec.get("each", "item"),
                in_=spec["in"],
                at=spec.get("at", "index"),
                while_=body.get("while"),
                do=self.task_list(pointer + "/do", body["do"]),
            )
        kind = next((k for k in _TASK_KEYS if k in body), None)
        if kind == "call":
            return self.call(pointer, common, body)
        if kind == "do":
            return DoTask(**common, do=self.task_list(pointer + "/do", body["do"]))
        if kind == "set":
            value = body["set"]
            return SetTask(**common, set=value, constant=not _has_expression(value))
        if kind == "switch":
            cases = []
            for case in body["switch"]:
                ((case_name, case_body),) = case.items()
                cases.append(
                    SwitchCase(name=case_name, when=case_body.get("when"), then=case_body["then"])
                )
            return SwitchTask(**common, cases=tuple(cases))
        if kind == "fork":
            spec = body["fork"]
            return ForkTask(
                **common,
                branches=self.task_list(pointer + "/fork/branches", spec["branches"]),
                compete=bool(spec.get("compete", False)),
            )
        if kind == "raise":
            error = body["raise"]["error"]
            if isinstance(error, str):
                if error not in self.errors:
                    raise ModelError(
                        pointer + "/raise/error",
                        f"error {error!r} is not declared in use.errors; "
                        f"declared: {sorted(self.errors)}",
                    )
                error = self.errors[error]
            return RaiseTask(**common, error=error)
        if kind == "emit":
            return EmitTask(**common, event=body["emit"]["event"].get("with") or EMPTY)
        if kind == "listen":
            return self.listen(pointer, common, body)
        if kind == "run":
            run = body["run"]
            process_kind = next(
                (k for k in ("workflow", "shell", "script", "container") if k in run), "unknown"
            )
            return RunTask(
                **common,
                process_kind=process_kind,
                process=run.get(process_kind) or EMPTY,
                await_=bool(run.get("await", True)),
                return_=run.get("return", "stdout"),
            )
        raise ModelError(pointer, f"task {name!r} has no known task type; use one of {_TASK_KEYS}")

    def call(self, pointer: str, common: dict[str, Any], body: Mapping[str, Any]) -> CallTask:
        call = body["call"]
        function = None
        if call not in ("http", "openapi", "grpc", "asyncapi", "a2a", "mcp") and not _is_external(
            call
        ):
            if call not in self.functions:
                raise ModelError(
                    pointer + "/call",
                    f"function {call!r} is not declared in use.functions; "
                    f"declared: {sorted(self.functions)}",
                )
            if call in self._resolving:
                raise ModelError(pointer + "/call", f"function {call!r} calls itself")
            self._resolving.add(call)
            try:
                function = self.task(f"/use/functions/{_escape(call)}", call, self.functions[call])
            finally:
                self._resolving.discard(call)
        with_ = body.get("with") or EMPTY
        foreach = None
        if call == "asyncapi":
            subscription = with_.get("subscription")
            spec = subscription.get("foreach") if isinstance(subscription, Mapping) else None
            if isinstance(spec, Mapping):
                foreach = self.iterator(pointer + "/with/subscription/foreach", spec)
        return CallTask(**common, call=call, with_=with_, function=function, foreach=foreach)

    def extensions(self, items: Any) -> tuple[Extension, ...]:
        built = []
        for index, item in enumerate(items or ()):
            ((name, body),) = item.items()
            pointer = f"/use/extensions/{index}/{_escape(name)}"
            extend = str(body["extend"])
            built.append(
                Extension(
                    name=name,
                    extend=extend,
                    extends=_EXTENDS.get(extend, frozenset({extend})),
                    when=body.get("when"),
                    before=self.task_list(pointer + "/before", body["before"])
                    if "before" in body
                    else None,
                    after=self.task_list(pointer + "/after", body["after"])
                    if "after" in body
                    else None,
                )
            )
        return tuple(built)

    def catch(self, pointer: str, body: Mapping[str, Any]) -> Catch:
        retry = body.get("retry")
        if isinstance(retry, str):
            if retry not in self.retries:
                raise ModelError(
                    pointer + "/retry",
                    f"retry policy {retry!r} is not declared in use.retries; "
                    f"declared: {sorted(self.retries)}",
                )
            retry = self.retries[retry]
        errors = (body.get("errors") or EMPTY).get("with") or EMPTY
        return Catch(
            errors=errors,
            as_=body.get("as", "error"),
            when=body.get("when"),
            except_when=body.get("exceptWhen"),
            retry=None if retry is None else self.retry(pointer + "/retry", retry),
            do=self.task_list(pointer + "/do", body["do"]) if "do" in body else None,
        )

    def retry(self, pointer: str, body: Mapping[str, Any]) -> RetryPolicy:
        limit = body.get("limit") or EMPTY
        attempt = limit.get("attempt") or EMPTY
        jitter = body.get("jitter") or EMPTY
        backoff = next(iter(body.get("backoff") or {"constant": {}}))

        def opt(key: str, value: Any) -> Any:
            return None if value is None else self.duration(f"{pointer}/{key}", value)

        return RetryPolicy(
            when=body.get("when"),
            except_when=body.get("exceptWhen"),
            delay=opt("delay", body.get("delay")),
            backoff=backoff,
            attempt_count=attempt.get("count"),
            attempt_duration=opt("limit/attempt/duration", attempt.get("duration")),
            total_duration=opt("limit/duration", limit.get("duration")),
            jitter_from=opt("jitter/from", jitter.get("from")),
            jitter_to=opt("jitter/to", jitter.get("to")),
        )

    def strategy(self, body: Mapping[str, Any]) -> ConsumptionStrategy:
        def filt(value: Mapping[str, Any]) -> EventFilter:
            return EventFilter(
                with_=value.get("with") or EMPTY, correlate=value.get("correlate") or EMPTY
            )

        if "one" in body:
            return ConsumptionStrategy(mode="one", filters=(filt(body["one"]),))
        if "all" in body:
            return ConsumptionStrategy(mode="all", filters=tuple(map(filt, body["all"])))
        until = body.get("until")
        return ConsumptionStrategy(
            mode="any",
            filters=tuple(map(filt, body.get("any") or ())),
            until_expression=until if isinstance(until, str) else None,
            until=self.strategy(until) if isinstance(until, Mapping) else None,
        )

    def schedule(self, body: Mapping[str, Any] | None) -> Schedule | None:
        if body is None:
            return None
        return Schedule(
            every=self.duration("/schedule/every", body["every"]) if "every" in body else None,
            cron=body.get("cron"),
            after=self.duration("/schedule/after", body["after"]) if "after" in body else None,
            on=self.strategy(body["on"]) if "on" in body else None,
        )

    def iterator(self, pointer: str, foreach: Mapping[str, Any]) -> SubscriptionIterator:
        return SubscriptionIterator(
            item=foreach.get("item", "item"),
            at=foreach.get("at", "index"),
            do=self.task_list(pointer + "/do", foreach["do"]) if "do" in foreach else None,
            output=self.data_filter(foreach.get("output"), "as"),
            export=self.data_filter(foreach.get("export"), "as"),
        )

    def listen(self, pointer: str, common: dict[str, Any], body: Mapping[str, Any]) -> ListenTask:
        foreach = body.get("foreach")
        return ListenTask(
            **common,
            to=self.strategy(body["listen"]["to"]),
            read=body["listen"].get("read", "data"),
            foreach=None if foreach is None else self.iterator(pointer + "/foreach", foreach),
        )


def build_workflow(document: Mapping[str, Any]) -> Workflow:
    """The typed model of a structurally valid definition document.

    Raises `ModelError` (with the JSON pointer) for references to undeclared reusable
    components and malformed durations; the validation package reports these too, all at once.
    """
    builder = _Builder(document)
    head = document["document"]
    use = document.get("use") or EMPTY
    return Workflow(
        namespace=head["namespace"],
        name=head["name"],
        version=head["version"],
        dsl=head["dsl"],
        raw=document,
        do=builder.task_list("/do", document["do"]),
        input=builder.data_filter(document.get("input"), "from"),
        output=builder.data_filter(document.get("output"), "as"),
        timeout=builder.timeout("/timeout", document.get("timeout")),
        secrets=tuple(use.get("secrets") or ()),
        authentications=use.get("authentications") or EMPTY,
        schedule=builder.schedule(document.get("schedule")),
        catalogs=use.get("catalogs") or EMPTY,
        extensions=builder.extensions(use.get("extensions")),
    )


def build_task(
    body: Mapping[str, Any], *, name: str, pointer: str, use: Mapping[str, Any] = EMPTY
) -> Task:
    """The model of one task definition that passed the structural checks: a function
    document (a cataloged function's ``function.yaml``), built under JSON pointer ``pointer``.

    ``use`` holds the reusable components its references resolve against (none by default: a
    function document is self-contained). Raises `ModelError` like `build_workflow`.
    """
    return _Builder({"use": use}).task(pointer, name, body)
