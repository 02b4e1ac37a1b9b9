"""Functions resolved at run time: ``call: name:version@catalog`` and ``call: <URI>``.

A cataloged function lives at ``<catalog root>/functions/<name>/<version>/function.yaml``
(the catalogs' file structure), the root being the endpoint of ``use.catalogs.<catalog>``, or,
for the catalog named ``default`` when the definition declares none,
``RuntimeOptions.default_catalog`` (``workflows.defaultCatalog``). A ``call`` that is a URI
names the function document itself. GitHub and GitLab pages are read raw, as the DSL asks:
``https://github.com/<owner>/<repo>/tree/<ref>/<path>`` (or ``blob``) becomes
``https://raw.githubusercontent.com/<owner>/<repo>/refs/heads/<ref>/<path>``; a bare
``https://github.com/<owner>/<repo>/<path>`` is read from its ``main`` branch;
``https://gitlab.com/<project>/-/tree/<ref>/<path>`` becomes ``.../-/raw/<ref>/<path>``.

The document is fetched through the HTTP effect within ``workflows.maxDocumentSize`` (with
the catalog endpoint's authentication, if any), once per run and URL, then validated as a task
definition by the project's own validation (every feature allowed: the effects refuse at run
time what configuration disables) and built. It is untrusted code: its tasks read no
``$secrets`` and use no authentication policy of the workflow (`REMOTE_FUNCTION`), and it may
reference no reusable component but the workflow's catalogs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import CallTask, ModelError, Task, build_task
from workflow_orchestrator.dsl.runtime._arguments import REMOTE_FUNCTION
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._runner import Runner
from workflow_orchestrator.dsl.validation import ValidationOptions, check_definition

__all__ = ["CATALOGED", "function_url", "raw_url", "remote_function"]

#: ``{functionName}:{functionVersion}@{catalogName}``.
CATALOGED = re.compile(r"^(?P<name>[^:@/]+):(?P<version>[^@/]+)@(?P<catalog>[^@/]+)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[^/]+)/(?P<repo>[^/]+)(?P<rest>/.*)?$")
_GITLAB = re.compile(r"^(?P<project>https://gitlab\.com/.+?)/-/(?:tree|blob)/(?P<rest>.+)$")
_FUNCTION_PATH = re.compile(r"/functions/(?P<name>[^/]+)/[^/]+/function\.ya?ml$")
# The caller's reusable components a function document may reference.
_SHARED_USE = ("catalogs",)
_INLINE_NODES = 5_000
# The document a function definition is validated in, as its one task.
_WRAPPER_HEAD = {"dsl": "1.0.3", "namespace": "catalog", "name": "function", "version": "1.0.0"}


def _error(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.CONFIGURATION, detail=detail, instance=where))


def raw_url(url: str) -> str:
    """The raw document behind a GitHub or GitLab page URL (any other URL unchanged)."""
    github = _GITHUB.match(url)
    if github is not None:
        rest = (github["rest"] or "").lstrip("/")
        kind, _, tail = rest.partition("/")
        if kind in ("tree", "blob") and tail:
            ref, _, path = tail.partition("/")
        else:
            ref, path = "main", rest
        return (
            f"https://raw.githubusercontent.com/{github['owner']}/{github['repo']}/refs/heads/"
            f"{ref}/{path}"
        )
    gitlab = _GITLAB.match(url)
    if gitlab is not None:
        return f"{gitlab['project']}/-/raw/{gitlab['rest']}"
    return url


def _catalog_root(runner: Runner, catalog: str, where: str) -> tuple[str, Mapping[str, Any] | None]:
    declared = runner.workflow.catalogs.get(catalog)
    if declared is not None:
        endpoint = declared.get("endpoint")
        if isinstance(endpoint, str):
            return endpoint, None
        if isinstance(endpoint, Mapping) and isinstance(endpoint.get("uri"), str):
            authentication = endpoint.get("authentication")
            return endpoint["uri"], authentication if isinstance(authentication, Mapping) else None
        raise _error(f"catalog {catalog!r} needs an endpoint URI", where)
    if catalog == "default" and runner.options.default_catalog:
        return runner.options.default_catalog, None
    if catalog == "default":
        raise _error(
            "the catalog 'default' is not declared in use.catalogs and this service has no "
            "default catalog; set workflows.defaultCatalog in the configuration, or declare "
            "use.catalogs.default",
            where,
        )
    raise _error(
        f"catalog {catalog!r} is not declared in use.catalogs "
        f"(declared: {sorted(runner.workflow.catalogs)}); declare it",
        where,
    )


def function_url(
    runner: Runner, call: str, where: str
) -> tuple[str, str, Mapping[str, Any] | None]:
    """The URL of the function document ``call`` names, the function's name and the
    authentication policy to fetch it with."""
    if "://" in call:
        url = raw_url(call)
        if not url.startswith(("http://", "https://")):
            raise _error(
                f"function {call!r} is not an http(s) URL; name a function document's URL or "
                "a cataloged function (name:version@catalog)",
                where,
            )
        named = _FUNCTION_PATH.search(urlsplit(url).path)
        return url, named["name"] if named else "function", None
    match = CATALOGED.match(call)
    if match is None:
        raise _error(
            f"function {call!r} is neither declared in use.functions, nor a cataloged function "
            "(name:version@catalog), nor a URI",
            where,
        )
    name, version = match["name"], match["version"]
    for part, value in (("name", name), ("version", version)):
        if not _SEGMENT.match(value):
            raise _error(
                f"the {part} of cataloged function {call!r} must be letters, digits, '.', '-', "
                "'_' or '+' (as in the catalog's folder names)",
                where,
            )
    root, authentication = _catalog_root(runner, match["catalog"], where)
    if not root.startswith(("http://", "https://")):
        raise _error(
            f"the root of catalog {match['catalog']!r} ({root!r}) is not an http(s) URL; fix its "
            "endpoint (workflows.defaultCatalog for the default catalog)",
            where,
        )
    url = raw_url(f"{root.rstrip('/')}/functions/{name}/{version}/function.yaml")
    return url, name, authentication


def _nodes_within(value: Any, budget: int) -> bool:
    """Whether ``value`` has at most ``budget`` JSON nodes (a cheap walk that stops early)."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _load(
    document: Any,
    *,
    call: str,
    url: str,
    name: str,
    pointer: str,
    use: Mapping[str, Any],
    timeout: float,
    where: str,
) -> Task:
    """Validate ``document`` as a task definition and build it under ``pointer`` (pure; may
    run in a thread); errors name the calling task, ``where``."""
    what = f"the function document {url} (called as {call!r})"
    if not isinstance(document, Mapping):
        raise _error(f"{what} is not a task definition (an object)", where)
    wrapper = {
        "document": _WRAPPER_HEAD,
        "use": {key: use[key] for key in _SHARED_USE if key in use},
        "do": [{"function": document}],
    }
    # Every feature allowed: what configuration disables is refused when the task runs.
    options = ValidationOptions(
        container_runtime=True, allow_shell=True, allow_script=True, timeout=timeout
    )
    problems = check_definition(wrapper, options).problems
    if problems:
        first = problems[0]
        at = first.pointer.removeprefix("/do/0/function") or "/"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _error(
            f"{what} is not a valid task definition: {at}: {first.message} ({first.rule})"
            f"{more}; fix the document or call another version",
            where,
        )
    try:
        return build_task(document, name=name, pointer=pointer)
    except ModelError as exc:
        at = exc.pointer.removeprefix(pointer) or "/"
        detail = f"{what} is not a valid task definition: {at}: {exc.message}"
        raise _error(detail, where) from None


async def remote_function(
    runner: Runner, task: CallTask, key: str, data: Any, args: dict[str, Any]
) -> Task:
    """The task a cataloged or URI ``call`` names, fetched and built once per run."""
    where = task.reference
    url, name, authentication = function_url(runner, task.call, where)
    cache_key = (url, where)
    found = runner.remote_functions.get(cache_key)
    if found is not None:
        return found
    headers: dict[str, str] = {}
    if authentication is not None:
        # The catalog's own policy, declared by the workflow: allowed even when a fetched
        # function calls into the catalog.
        trusted = {k: v for k, v in args.items() if k != REMOTE_FUNCTION}
        header, _ = await authorize(runner, authentication, data, trusted, where, key + "/catalog")
        headers["authorization"] = header
    document = await fetch_document(
        runner.effects,
        runner.options,
        runner.documents,
        url,
        what=f"the function document {url}",
        accept="application/yaml, application/json, text/yaml, text/plain",
        where=where,
        headers=headers,
    )
    use = runner.workflow.raw.get("use") or {}
    load = functools.partial(
        _load,
        document,
        call=task.call,
        url=url,
        name=name,
        pointer=where + "/call",
        use=use,
        timeout=runner.options.http_timeout,
        where=where,
    )
    if _nodes_within(document, _INLINE_NODES):
        function = load()
    else:
        try:
            with trio.fail_after(runner.options.http_timeout + 1):
                function = await trio.to_thread.run_sync(load, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.TIMEOUT,
                    detail=f"validating the function document {url} took longer than "
                    f"{runner.options.http_timeout:g}s (workflows.httpTimeout); make it smaller",
                    instance=where,
                )
            ) from None
    runner.remote_functions[cache_key] = function
    return function
