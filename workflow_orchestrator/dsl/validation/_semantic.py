"""Semantic checks the schema cannot express.

- ``then`` (and switch cases' ``then``) name a task of the same task list, or ``continue``,
  ``exit``, ``end`` (rule ``then-target``); task names are unique in their list
  (``unique-task-name``).
- References to reusable components are declared in ``use``: functions (``function-reference``),
  errors (``error-reference``), retry policies (``retry-reference``), authentication policies
  (``authentication-reference``), timeouts (``timeout-reference``), catalogs
  (``catalog-reference``) and secrets, by secret-based policies and by ``$secrets.name`` in
  expressions (``secret-reference``).
- Every runtime expression compiles (``expression``): every string written ``${ ... }``
  anywhere, and the fields the DSL evaluates in loose mode too (``if``, ``input.from``,
  ``output.as``, ``export.as``, switch ``when``, ``for.in``/``while``, catch ``when``/
  ``exceptWhen``, listen ``until``, correlation ``from``).

Apart from those problems, ``unsupported`` collects what is valid DSL but this runtime will not
run (``UNSUPPORTED_RULES``): a ``call`` of ``grpc``, ``asyncapi``, ``a2a`` or ``mcp`` that
configuration disables (``unsupported-call``, ``workflows.calls.<kind>.enabled``), an MCP
server started over stdio unless enabled (``mcp-stdio-disabled``, ``workflows.calls.mcp.stdio``),
``run.container`` without a container runtime (``container-runtime``),
``run.shell``/``run.script`` unless enabled (``shell-disabled``, ``script-disabled``), a
script in another language than js (javascript) or python (``script-language``), and
what this service's configuration refuses to the document's namespace: a process, MCP stdio
servers included (``process-not-allowed``, ``workflows.run.namespaces``) and a secret in
``use.secrets`` it is not granted (``secret-not-granted``, ``security.secrets.grants``).

The walk tolerates any shape (the structural problems are reported separately), so a broken
definition still gets every semantic problem at once. It stops with one ``limit`` problem past
``max_expressions`` expressions (``definitions.maxExpressions``) or its ``deadline``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.expressions import (
    ARGUMENT_NAMES,
    ExpressionEngine,
    ExpressionError,
    is_runtime_expression,
)

from ._limits import MAX_EXPRESSIONS, Deadline, limit_problem
from ._problems import DefinitionProblem, InvalidDefinition, json_pointer

FLOW_DIRECTIVES = ("continue", "exit", "end")
UNSUPPORTED_RULES = frozenset(
    {
        "unsupported-call",
        "mcp-stdio-disabled",
        "container-runtime",
        "shell-disabled",
        "script-disabled",
        "script-language",
        "process-not-allowed",
        "secret-not-granted",
    }
)
SERVICE_CALLS = frozenset({"grpc", "asyncapi", "a2a", "mcp"})
BUILTIN_CALLS = frozenset({"http", "openapi"}) | SERVICE_CALLS
# The script languages the runtime runs (any case), as dsl.runtime's process tasks accept them.
SCRIPT_LANGUAGES = frozenset({"js", "javascript", "python"})
_SCHEMES = ("basic", "bearer", "digest", "oauth2", "oidc")
_SECRET_USE = re.compile(
    r"\$secrets\s*(?:\.\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[\s*\"(?P<quoted>[^\"\\]*)\"\s*\])"
)
_CATALOG_REFERENCE = re.compile(r"^(?P<name>[^:@/]+):(?P<version>[^@]+)@(?P<catalog>[^@]+)$")

Path = tuple[str | int, ...]


@attrs.frozen(kw_only=True)
class _Declared:
    functions: frozenset[str]
    errors: frozenset[str]
    retries: frozenset[str]
    authentications: frozenset[str]
    timeouts: frozenset[str]
    catalogs: frozenset[str]
    secrets: frozenset[str]


def _names(value: Any) -> frozenset[str]:
    if isinstance(value, Mapping):
        return frozenset(str(key) for key in value)
    if isinstance(value, list):
        return frozenset(str(item) for item in value if isinstance(item, str))
    return frozenset()


def _declared(document: Mapping[str, Any]) -> _Declared:
    use = document.get("use")
    use = use if isinstance(use, Mapping) else {}
    return _Declared(
        functions=_names(use.get("functions")),
        errors=_names(use.get("errors")),
        retries=_names(use.get("retries")),
        authentications=_names(use.get("authentications")),
        timeouts=_names(use.get("timeouts")),
        catalogs=_names(use.get("catalogs")),
        secrets=_names(use.get("secrets")),
    )


def _listing(names: frozenset[str]) -> str:
    return f"declared: {_some(names)}" if names else "none are declared"


def _some(names: frozenset[str], shown: int = 10) -> str:
    """The first ``shown`` names, sorted (a message stays short whatever the document)."""
    first = sorted(names)[:shown]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{first}{more}"


@attrs.define(eq=False)
class SemanticChecker:
    """Collects the semantic problems of one document, and what it uses that this runtime will
    not run (``unsupported``); see the module doc."""

    document: Mapping[str, Any]
    engine: ExpressionEngine
    container_runtime: bool
    allow_shell: bool
    allow_script: bool
    # MCP servers may be started over stdio (workflows.calls.mcp.stdio).
    allow_mcp_stdio: bool = False
    # The calls beyond http/openapi that configuration enables (workflows.calls).
    enabled_calls: frozenset[str] = SERVICE_CALLS
    max_expressions: int = MAX_EXPRESSIONS
    deadline: Deadline | None = None
    # The configuration's namespace rules (None: everything allowed).
    secret_granted: Callable[[str, str], bool] | None = None
    process_allowed: Callable[[str], bool] | None = None
    problems: list[DefinitionProblem] = attrs.field(factory=list)
    unsupported: list[DefinitionProblem] = attrs.field(factory=list)
    expressions: int = attrs.field(init=False, default=0)
    declared: _Declared = attrs.field(init=False)
    variables: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.declared = _declared(self.document)
        self.variables = ARGUMENT_NAMES | _task_variables(self.document)

    def _add(self, path: Path, message: str, rule: str) -> None:
        self.problems.append(
            DefinitionProblem(pointer=json_pointer(path), message=message, rule=rule)
        )

    def _unsupported(self, path: Path, message: str, rule: str) -> None:
        self.unsupported.append(
            DefinitionProblem(pointer=json_pointer(path), message=message, rule=rule)
        )

    def run(self) -> list[DefinitionProblem]:
        """Check the whole document; return the problems in walk order (and fill
        ``unsupported``)."""
        document = self.document
        self._count_expressions(document)
        self._expressions(document, ())
        self._loose_at(document, (), ("input", "from"))
        self._loose_at(document, (), ("output", "as"))
        self._timeout_reference(document.get("timeout"), ("timeout",))
        use = document.get("use")
        if isinstance(use, Mapping):
            for name, function in _items(use.get("functions")):
                if isinstance(function, Mapping):
                    self._task(function, ("use", "functions", name), siblings=None)
            self._extensions(use.get("extensions"))
        self._authentications(document, ())
        self._secret_grants(use)
        self._task_list(document.get("do"), ("do",))
        schedule = document.get("schedule")
        if isinstance(schedule, Mapping):
            self._listen_strategy(schedule.get("on"), ("schedule", "on"))
        return self.problems

    def _extensions(self, extensions: Any) -> None:
        """An extension's ``when`` and its ``before``/``after`` lists, checked like tasks."""
        if not isinstance(extensions, list):
            return
        for index, item in enumerate(extensions):
            if not isinstance(item, Mapping) or len(item) != 1:
                continue
            name, extension = next(iter(item.items()))
            if isinstance(extension, Mapping):
                path: Path = ("use", "extensions", index, str(name))
                self._loose_at(extension, path, ("when",))
                self._task_list(extension.get("before"), (*path, "before"))
                self._task_list(extension.get("after"), (*path, "after"))

    # expressions -------------------------------------------------------------------------

    def _compile(self, source: str, path: Path) -> None:
        self.expressions += 1
        if self.expressions > self.max_expressions:
            raise self._too_many(path)
        if self.deadline is not None:
            self.deadline.check()
        try:
            compiled = self.engine.compile(source)
        except ExpressionError as error:
            self._add(path, str(error), "expression")
            return
        for name in sorted(compiled.arguments - self.variables):
            self._add(
                path,
                f"the expression reads ${name}, which is neither a runtime argument "
                f"({', '.join('$' + known for known in sorted(ARGUMENT_NAMES))}) nor a variable "
                "declared by for.each, for.at, catch.as or foreach.item/at; fix the name",
                "expression-variable",
            )
        for match in _SECRET_USE.finditer(compiled.program):
            name = match.group("name") or match.group("quoted")
            if name not in self.declared.secrets:
                self._add(
                    path,
                    f"the expression reads secret {name!r}, which is not declared in use.secrets "
                    f"({_listing(self.declared.secrets)}); declare it or fix the name",
                    "secret-reference",
                )

    def _count_expressions(self, document: Any) -> None:
        """Refuse a document with too many ``${ ... }`` strings before compiling any (a cheap
        walk); the loose-mode fields are counted as they compile."""
        count = 0
        stack: list[tuple[Any, Path]] = [(document, ())]
        while stack:
            value, path = stack.pop()
            if isinstance(value, str):
                if is_runtime_expression(value):
                    count += 1
                    if count > self.max_expressions:
                        raise self._too_many(path)
            elif isinstance(value, Mapping):
                stack.extend(reversed([(item, (*path, str(key))) for key, item in value.items()]))
            elif isinstance(value, list):
                stack.extend(reversed([(item, (*path, i)) for i, item in enumerate(value)]))

    def _too_many(self, path: Path) -> InvalidDefinition:
        return limit_problem(
            f"the definition has more than {self.max_expressions} runtime expressions, the "
            "limit set by definitions.maxExpressions; split it into subflows or raise the "
            "setting",
            json_pointer(path),
        )

    def _expressions(self, value: Any, path: Path) -> None:
        """Compile every strict ``${ ... }`` string anywhere below ``value``."""
        if isinstance(value, str):
            if is_runtime_expression(value):
                self._compile(value, path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self._expressions(item, (*path, str(key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._expressions(item, (*path, index))

    def _loose_at(self, container: Any, base: Path, keys: Path) -> None:
        """Compile the loose-mode expression at ``keys`` under ``container``, if a string."""
        value = container
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                return
            value = value[key]
        if isinstance(value, str) and not is_runtime_expression(value):
            self._compile(value, (*base, *keys))

    # tasks -------------------------------------------------------------------------------

    def _task_list(self, tasks: Any, path: Path) -> None:
        if not isinstance(tasks, list):
            return
        names: set[str] = set()
        for index, item in enumerate(tasks):
            if isinstance(item, Mapping) and len(item) == 1:
                name = str(next(iter(item)))
                if name in names:
                    self._add(
                        (*path, index, name),
                        f"task name {name!r} is already used in this task list; "
                        "give each task a unique name",
                        "unique-task-name",
                    )
                names.add(name)
        siblings = frozenset(names)
        for index, item in enumerate(tasks):
            if isinstance(item, Mapping) and len(item) == 1:
                name, task = next(iter(item.items()))
                if isinstance(task, Mapping):
                    self._task(task, (*path, index, str(name)), siblings=siblings)

    def _then(self, target: Any, path: Path, siblings: frozenset[str] | None) -> None:
        if not isinstance(target, str) or target in FLOW_DIRECTIVES or siblings is None:
            return
        if target not in siblings:
            self._add(
                path,
                f"then refers to task {target!r}, which is not in the same task list; "
                f"use one of {_some(siblings)} or continue, exit, end",
                "then-target",
            )

    def _task(self, task: Mapping[str, Any], path: Path, siblings: frozenset[str] | None) -> None:
        self._then(task.get("then"), (*path, "then"), siblings)
        for keys in (("if",), ("input", "from"), ("output", "as"), ("export", "as")):
            self._loose_at(task, path, keys)
        self._timeout_reference(task.get("timeout"), (*path, "timeout"))
        if "call" in task:
            self._call(task, path)
        if "do" in task:
            self._task_list(task.get("do"), (*path, "do"))
        if "fork" in task and isinstance(task["fork"], Mapping):
            self._task_list(task["fork"].get("branches"), (*path, "fork", "branches"))
        if "for" in task:
            self._loose_at(task, path, ("for", "in"))
            self._loose_at(task, path, ("while",))
        if "try" in task:
            self._try(task, path)
        if "raise" in task:
            self._raise(task.get("raise"), (*path, "raise"))
        if "listen" in task:
            self._listen(task, path)
        if "run" in task:
            self._run(task.get("run"), (*path, "run"))
        if "switch" in task:
            self._switch(task.get("switch"), (*path, "switch"), siblings)

    def _call(self, task: Mapping[str, Any], path: Path) -> None:
        call = task.get("call")
        if not isinstance(call, str):
            return
        if call == "asyncapi":
            self._asyncapi_foreach(task.get("with"), (*path, "with"))
        if call in SERVICE_CALLS and call not in self.enabled_calls:
            self._unsupported(
                (*path, "call"),
                f"this service does not run call: {call} while workflows.calls.{call}.enabled "
                f"is false; set workflows.calls.{call}.enabled: true in the configuration, or "
                "remove this task",
                "unsupported-call",
            )
        elif call == "mcp":
            self._mcp_stdio(task, path)
        elif call in BUILTIN_CALLS or "://" in call:
            return
        elif (catalog := _CATALOG_REFERENCE.match(call)) is not None:
            name = catalog.group("catalog")
            if name not in self.declared.catalogs and name != "default":
                self._add(
                    (*path, "call"),
                    f"calls a function of catalog {name!r}, which is not declared in "
                    f"use.catalogs ({_listing(self.declared.catalogs)}); declare it",
                    "catalog-reference",
                )
        elif call not in self.declared.functions:
            self._add(
                (*path, "call"),
                f"calls function {call!r}, which is not declared in use.functions "
                f"({_listing(self.declared.functions)}); declare it or fix the name",
                "function-reference",
            )

    def _mcp_stdio(self, task: Mapping[str, Any], path: Path) -> None:
        with_ = task.get("with")
        transport = with_.get("transport") if isinstance(with_, Mapping) else None
        if not isinstance(transport, Mapping) or "stdio" not in transport:
            return
        where = (*path, "with", "transport", "stdio")
        if not self.allow_mcp_stdio:
            self._unsupported(
                where,
                "this service does not start MCP servers over stdio while "
                "workflows.calls.mcp.stdio is false (the default); set workflows.calls.mcp.stdio: "
                "true in the configuration, or use the http transport",
                "mcp-stdio-disabled",
            )
        elif self.process_allowed is not None and not self.process_allowed(self._namespace()):
            self._unsupported(
                where,
                f"namespace {self._namespace()!r} may not start MCP servers over stdio (local "
                "processes); add it to workflows.run.namespaces in the configuration, or use the "
                "http transport",
                "process-not-allowed",
            )

    def _try(self, task: Mapping[str, Any], path: Path) -> None:
        self._task_list(task.get("try"), (*path, "try"))
        catch = task.get("catch")
        if not isinstance(catch, Mapping):
            return
        base = (*path, "catch")
        self._loose_at(catch, base, ("when",))
        self._loose_at(catch, base, ("exceptWhen",))
        retry = catch.get("retry")
        if isinstance(retry, str) and retry not in self.declared.retries:
            self._add(
                (*base, "retry"),
                f"retry policy {retry!r} is not declared in use.retries "
                f"({_listing(self.declared.retries)}); declare it or fix the name",
                "retry-reference",
            )
        self._task_list(catch.get("do"), (*base, "do"))

    def _raise(self, spec: Any, path: Path) -> None:
        if not isinstance(spec, Mapping):
            return
        error = spec.get("error")
        if isinstance(error, str) and error not in self.declared.errors:
            self._add(
                (*path, "error"),
                f"error {error!r} is not declared in use.errors "
                f"({_listing(self.declared.errors)}); declare it or fix the name",
                "error-reference",
            )

    def _listen(self, task: Mapping[str, Any], path: Path) -> None:
        spec = task.get("listen")
        if isinstance(spec, Mapping):
            self._listen_strategy(spec.get("to"), (*path, "listen", "to"))
        foreach = task.get("foreach")  # beside `listen`, not inside it
        if isinstance(foreach, Mapping):
            self._task_list(foreach.get("do"), (*path, "foreach", "do"))
            self._loose_at(foreach, (*path, "foreach"), ("output", "as"))
            self._loose_at(foreach, (*path, "foreach"), ("export", "as"))

    def _asyncapi_foreach(self, with_: Any, path: Path) -> None:
        """The tasks an AsyncAPI subscription runs for each message, checked like any list."""
        subscription = with_.get("subscription") if isinstance(with_, Mapping) else None
        foreach = subscription.get("foreach") if isinstance(subscription, Mapping) else None
        if isinstance(foreach, Mapping):
            base = (*path, "subscription", "foreach")
            self._task_list(foreach.get("do"), (*base, "do"))
            self._loose_at(foreach, base, ("output", "as"))
            self._loose_at(foreach, base, ("export", "as"))

    def _listen_strategy(self, strategy: Any, path: Path) -> None:
        if not isinstance(strategy, Mapping):
            return
        self._loose_at(strategy, path, ("until",))
        for kind in ("all", "any"):
            for index, event_filter in enumerate(_list(strategy.get(kind))):
                self._event_filter(event_filter, (*path, kind, index))
        self._event_filter(strategy.get("one"), (*path, "one"))

    def _event_filter(self, event_filter: Any, path: Path) -> None:
        if not isinstance(event_filter, Mapping):
            return
        for key, correlation in _items(event_filter.get("correlate")):
            self._loose_at(correlation, (*path, "correlate", key), ("from",))

    def _run(self, spec: Any, path: Path) -> None:
        if not isinstance(spec, Mapping):
            return
        if "container" in spec and not self.container_runtime:
            self._unsupported(
                (*path, "container"),
                "this service does not run run.container while workflows.run.container.runtime "
                "is none (the default); set it to podman or docker in the configuration, or "
                "remove this task",
                "container-runtime",
            )
        if "shell" in spec and not self.allow_shell:
            self._unsupported(
                (*path, "shell"),
                "this service does not run run.shell while workflows.run.shell is false (the "
                "default); set workflows.run.shell: true in the configuration, or remove this task",
                "shell-disabled",
            )
        if "script" in spec and not self.allow_script:
            self._unsupported(
                (*path, "script"),
                "this service does not run run.script while workflows.run.script is false (the "
                "default); set workflows.run.script: true in the configuration, or remove this "
                "task",
                "script-disabled",
            )
        self._process_namespace(spec, path)
        self._script_language(spec.get("script"), (*path, "script", "language"))

    def _script_language(self, script: Any, path: Path) -> None:
        language = script.get("language") if isinstance(script, Mapping) else None
        if (
            self.allow_script
            and isinstance(language, str)
            and language.lower() not in SCRIPT_LANGUAGES
        ):
            self._unsupported(
                path,
                f"script language {language!r} is not supported; use js (or javascript) or "
                "python, or remove this task",
                "script-language",
            )

    def _namespace(self) -> str:
        header = self.document.get("document")
        namespace = header.get("namespace") if isinstance(header, Mapping) else None
        return namespace if isinstance(namespace, str) else ""

    def _secret_grants(self, use: Any) -> None:
        granted = self.secret_granted
        if granted is None or not isinstance(use, Mapping):
            return
        namespace = self._namespace()
        for index, name in enumerate(_list(use.get("secrets"))):
            if isinstance(name, str) and not granted(namespace, name):
                self._unsupported(
                    ("use", "secrets", index),
                    f"secret {name!r} is not granted to namespace {namespace!r}; grant it in "
                    "security.secrets.grants (an entry with this namespace, or *, listing the "
                    "secret), or remove it",
                    "secret-not-granted",
                )

    def _process_namespace(self, spec: Mapping[str, Any], path: Path) -> None:
        allowed = self.process_allowed
        if allowed is None:
            return
        namespace = self._namespace()
        for kind, enabled in (("shell", self.allow_shell), ("script", self.allow_script)):
            if kind in spec and enabled and not allowed(namespace):
                self._unsupported(
                    path[:-1] if path and path[-1] == "run" else path,
                    f"namespace {namespace!r} may not run run.{kind} processes; add it to "
                    "workflows.run.namespaces in the configuration, or remove this task",
                    "process-not-allowed",
                )

    def _switch(self, cases: Any, path: Path, siblings: frozenset[str] | None) -> None:
        for index, item in enumerate(_list(cases)):
            if isinstance(item, Mapping) and len(item) == 1:
                name, case = next(iter(item.items()))
                if isinstance(case, Mapping):
                    base = (*path, index, str(name))
                    self._loose_at(case, base, ("when",))
                    self._then(case.get("then"), (*base, "then"), siblings)

    # references --------------------------------------------------------------------------

    def _timeout_reference(self, timeout: Any, path: Path) -> None:
        if isinstance(timeout, str) and timeout not in self.declared.timeouts:
            self._add(
                path,
                f"timeout {timeout!r} is not declared in use.timeouts "
                f"({_listing(self.declared.timeouts)}); declare it or fix the name",
                "timeout-reference",
            )

    def _authentications(self, value: Any, path: Path) -> None:
        """Check every ``authentication`` reference and secret-based policy in the document."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                item_path = (*path, str(key))
                if key == "authentication" and isinstance(item, Mapping):
                    self._authentication(item, item_path)
                elif path == ("use",) and key == "authentications":
                    for name, policy in _items(item):
                        self._policy_secrets(policy, (*item_path, name))
                self._authentications(item, item_path)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._authentications(item, (*path, index))

    def _authentication(self, policy: Mapping[str, Any], path: Path) -> None:
        name = policy.get("use")
        if isinstance(name, str):
            if name not in self.declared.authentications:
                self._add(
                    (*path, "use"),
                    f"authentication policy {name!r} is not declared in use.authentications "
                    f"({_listing(self.declared.authentications)}); declare it or fix the name",
                    "authentication-reference",
                )
            return
        self._policy_secrets(policy, path)

    def _policy_secrets(self, policy: Any, path: Path) -> None:
        if not isinstance(policy, Mapping):
            return
        for scheme in _SCHEMES:
            settings = policy.get(scheme)
            if isinstance(settings, Mapping) and isinstance(settings.get("use"), str):
                secret = settings["use"]
                if secret not in self.declared.secrets:
                    self._add(
                        (*path, scheme, "use"),
                        f"secret {secret!r} is not declared in use.secrets "
                        f"({_listing(self.declared.secrets)}); declare it or fix the name",
                        "secret-reference",
                    )


def _task_variables(value: Any) -> frozenset[str]:
    """Variable names tasks declare anywhere in the document, with the DSL's defaults."""
    names = {"item", "index", "error"}
    declaring = {"for": ("each", "at"), "catch": ("as",), "foreach": ("item", "at")}
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, item in node.items():
                if key in declaring and isinstance(item, Mapping):
                    names.update(
                        str(item[field])
                        for field in declaring[key]
                        if isinstance(item.get(field), str)
                    )
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(names)


def _items(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key), item


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
