"""Validating a submitted definition in a worker thread, so the event loop keeps serving.

Reading and checking a definition is CPU work (YAML, the grammar, compiling every expression)
that grows with the document. ``parse_submission_off_loop`` runs ``parse_submission`` in a
thread of a small pool (``VALIDATION_THREADS``, shared by the caller through its limiter), so
health checks, other requests and instances go on meanwhile. The validation stops itself at
its deadline (``definitions.validationTimeout``); should it not (a single step that long),
the caller stops waiting shortly after and the thread is abandoned, still holding its place in
the pool until it ends, so abandoned work never piles up.
"""

from __future__ import annotations

import functools

import trio

from workflow_orchestrator.definitions._submission import Submission, parse_submission
from workflow_orchestrator.dsl.validation import Deadline, ValidationOptions

__all__ = ["VALIDATION_THREADS", "parse_submission_off_loop", "validation_limiter"]

VALIDATION_THREADS = 2
_GRACE = 1.0  # seconds past the deadline before the caller stops waiting for the thread


def validation_limiter() -> trio.CapacityLimiter:
    """The pool of validation threads of one API app."""
    return trio.CapacityLimiter(VALIDATION_THREADS)


async def parse_submission_off_loop(
    body: str | bytes,
    *,
    definition_id: str | None,
    options: ValidationOptions,
    limiter: trio.CapacityLimiter,
) -> Submission:
    """``parse_submission`` in a worker thread of ``limiter``; raises as it does, and
    ``InvalidDefinition`` (rule ``limit``) when it outlives ``options.timeout``."""
    work = functools.partial(parse_submission, body, definition_id=definition_id, options=options)
    if options.timeout is None:
        return await trio.to_thread.run_sync(work, limiter=limiter, abandon_on_cancel=True)
    with trio.move_on_after(options.timeout + _GRACE):
        return await trio.to_thread.run_sync(work, limiter=limiter, abandon_on_cancel=True)
    raise Deadline.after(options.timeout).expired()
