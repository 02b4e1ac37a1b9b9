"""Documents a workflow fetches: JSON schemas (``schema.resource``), OpenAPI documents, A2A
agent cards and function documents (cataloged functions).

A remote document is as untrusted as a definition: a 406-byte YAML file of nested aliases
expands to gigabytes. So a document is fetched with a cap on its body and read by the same
loader as definitions (``load_data``), which counts what aliases expand to in bytes; both limits
are ``RuntimeOptions.max_document_size`` (``workflows.maxDocumentSize``). A body larger than
``INLINE_PARSE_LIMIT`` is parsed in a worker thread, under the ``workflows.httpTimeout``
deadline, so the event loop never waits for it. Each document is fetched once per run.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._effects import Effects, HttpRequest, HttpResponse
from workflow_orchestrator.dsl.runtime._options import RuntimeOptions
from workflow_orchestrator.dsl.validation import Deadline, InvalidDefinition, load_data

__all__ = ["INLINE_PARSE_LIMIT", "fetch_document", "require_success"]

INLINE_PARSE_LIMIT = 64 * 1024
_SETTING = "workflows.maxDocumentSize"


def _error(error_type: str, detail: str, where: str, title: str | None = None) -> WorkflowError:
    return WorkflowError(Problem.standard(error_type, detail=detail, instance=where, title=title))


def require_success(response: HttpResponse, doing: str, where: str) -> None:
    """Raise the communication error ``<doing> returned status <N>`` (at ``where``) unless
    ``response`` is a 2xx: what every fetch of a document, script or proto file says."""
    if not 200 <= response.status < 300:
        raise WorkflowError(
            Problem.standard(
                ErrorType.COMMUNICATION,
                status=response.status,
                detail=f"{doing} returned status {response.status}",
                instance=where,
            )
        )


def _too_large(what: str, limit: int, where: str) -> WorkflowError:
    return _error(
        ErrorType.CONFIGURATION,
        f"{what} is larger than {limit:,} bytes, the limit set by {_SETTING}; make it smaller "
        "or raise the setting",
        where,
        title="Document Too Large",
    )


def _parse(body: bytes, *, what: str, limit: int, deadline: Deadline) -> Any:
    text = body.decode("utf-8")
    return load_data(
        text, what=what, max_expanded_size=limit, size_setting=_SETTING, deadline=deadline
    )


async def fetch_document(
    effects: Effects,
    options: RuntimeOptions,
    cache: dict[str, Any],
    uri: str,
    *,
    what: str,
    accept: str,
    where: str,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The document at ``uri`` parsed (JSON or YAML), fetched once per run (``cache``).

    ``what`` names it in errors (``the schema https://...``). A status other than 2xx is a
    communication error; a body over the limit, text that is not JSON or YAML, or aliases that
    expand past the limit are a configuration error naming the limit and its setting; a parse
    that outlives ``workflows.httpTimeout`` is a timeout error. ``headers`` are sent besides
    ``accept`` (an ``authorization``, say).
    """
    if uri in cache:
        return cache[uri]
    limit = options.max_document_size
    timeout = options.http_timeout
    response = await effects.http(
        HttpRequest(
            method="GET",
            url=uri,
            headers={**(headers or {}), "accept": accept},
            timeout=timeout,
            max_body_size=limit,
        )
    )
    require_success(response, f"fetching {what}", where)
    if len(response.body) > limit:
        raise _too_large(what, limit, where)
    deadline = Deadline.after(timeout, setting="workflows.httpTimeout", doing=f"reading {what}")
    parse = functools.partial(_parse, response.body, what=what, limit=limit, deadline=deadline)
    try:
        if len(response.body) <= INLINE_PARSE_LIMIT:
            document = parse()
        else:
            with trio.fail_after(timeout + 1):
                document = await trio.to_thread.run_sync(parse, abandon_on_cancel=True)
    except UnicodeDecodeError:
        raise _error(
            ErrorType.CONFIGURATION, f"{what} is not UTF-8 text (JSON or YAML)", where
        ) from None
    except InvalidDefinition as invalid:
        raise _error(ErrorType.CONFIGURATION, invalid.problems[0].message, where) from None
    except trio.TooSlowError:
        detail = deadline.expired().problems[0].message
        raise _error(ErrorType.TIMEOUT, detail, where) from None
    cache[uri] = document
    return document
