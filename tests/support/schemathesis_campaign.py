"""A schemathesis campaign against a running API: every response counted by status.

``run_campaign("http://127.0.0.1:8080/api/openapi.json", max_examples=50)`` loads the OpenAPI
document the service serves and runs schemathesis' engine on it, as ``schemathesis run`` does:
the documented examples, coverage (boundary and negative values, wrong media types, unexpected
methods), fuzzing, and stateful sequences that follow the document's links (register, start,
read, command). Every response is counted by its status code; each 5xx is kept with the request
that caused it (method, path, status and a curl command), as are network errors (a request
that got no answer, for example a timeout). The checks are schemathesis' own (``all`` by
default); ``check_failures`` counts those that failed (mostly ``positive_data_acceptance``:
the document cannot express every rule, such as "the definition must exist"), but only a 5xx
or a request without an answer makes ``ok`` false.

It runs synchronously (schemathesis uses ``requests``): call it from a thread when the service
runs in the caller's Trio run (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import attrs
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

__all__ = ["CampaignResult", "ServerError", "run_campaign"]


@attrs.frozen
class ServerError:
    """One request answered with a 5xx (``status``) or not at all (``status`` 0)."""

    method: str
    path: str
    status: int
    curl: str
    body: str


@attrs.frozen
class CampaignResult:
    statuses: dict[int, int]
    server_errors: tuple[ServerError, ...]
    check_failures: dict[str, int]
    engine_errors: tuple[str, ...]
    # The first few check failures, as "check: operation: title: message / curl".
    failure_samples: tuple[str, ...] = ()

    @classmethod
    def merge(cls, results: list[CampaignResult]) -> CampaignResult:
        """The results of several rounds as one."""
        statuses: collections.Counter[int] = collections.Counter()
        failures: collections.Counter[str] = collections.Counter()
        for result in results:
            statuses.update(result.statuses)
            failures.update(result.check_failures)
        return cls(
            statuses=dict(statuses),
            server_errors=tuple(e for r in results for e in r.server_errors),
            check_failures=dict(failures),
            engine_errors=tuple(e for r in results for e in r.engine_errors),
            failure_samples=tuple(e for r in results for e in r.failure_samples),
        )

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def by_class(self) -> dict[str, int]:
        """``{"2xx": n, "4xx": n, ...}``; ``"none"`` counts requests that got no answer."""
        classes: collections.Counter[str] = collections.Counter()
        for status, count in self.statuses.items():
            classes[f"{status // 100}xx" if status else "none"] += count
        return dict(sorted(classes.items()))

    @property
    def ok(self) -> bool:
        """No 5xx and no request left unanswered (schemathesis' own errors are reported, not
        counted: they are about the generator, not the API)."""
        return not self.server_errors

    def report(self, *, verbose: bool = False) -> str:
        lines = [
            f"requests: {self.requests:,}",
            "by status class: " + ", ".join(f"{k} {v:,}" for k, v in self.by_class.items()),
            "by status: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.statuses.items())),
        ]
        if self.check_failures:
            lines.append(
                "schemathesis check failures (not server errors): "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.check_failures.items()))
            )
        for error in self.server_errors[:20]:
            lines.append(f"{error.status or 'no answer'} {error.method} {error.path}")
            lines.append(f"    {error.curl[:2000]}")
            lines.append(f"    -> {error.body[:500]}")
        lines.extend(f"engine error: {e}" for e in self.engine_errors[:20])
        if verbose:
            lines.extend(f"check failure: {s}" for s in self.failure_samples)
        return "\n".join(lines)


class _Tally:
    """Counts responses from the hooks, which run on schemathesis' worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_errors: list[ServerError] = []

    def after_call(self, context: Any, case: Any, response: Any) -> None:
        status = int(response.status_code)
        with self.lock:
            self.statuses[status] += 1
        if status >= 500:
            self._keep(case, status, response.content.decode("utf-8", "replace"))

    def after_network_error(self, context: Any, case: Any, request: Any) -> None:
        with self.lock:
            self.statuses[0] += 1
        self._keep(case, 0, "no answer (connection error or timeout)")

    def _keep(self, case: Any, status: int, body: str) -> None:
        try:
            curl = case.as_curl_command()
        except Exception:  # a command is a help, never a reason to lose the error
            curl = "(no curl command)"
        error = ServerError(
            method=case.method, path=case.formatted_path, status=status, curl=curl, body=body
        )
        with self.lock:
            self.server_errors.append(error)


def run_campaign(
    openapi_url: str,
    *,
    max_examples: int = 100,
    stateful_steps: int = 20,
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful"),
    workers: int = 2,
    seed: int | None = None,
    max_time: float | None = None,
    request_timeout: float = 90.0,
    checks: str = "all",
) -> CampaignResult:
    """Run the campaign and return what the API answered (see the module's docstring)."""
    generation = {"max-examples": max_examples, "allow-x00": True}
    data: dict[str, Any] = {
        "workers": workers,
        "continue-on-failure": True,
        "request-timeout": request_timeout,
        "suppress-health-check": ["all"],
        "generation": generation,
        "phases": {
            name: {"enabled": name in phases}
            for name in ("examples", "coverage", "fuzzing", "stateful")
        },
        "checks": {"enabled": True}
        if checks == "all"
        else {"enabled": False, **{c: {"enabled": True} for c in checks.split(",")}},
    }
    data["phases"]["stateful"]["max-steps"] = stateful_steps
    if seed is not None:
        data["seed"] = seed
    if max_time is not None:
        data["max-time"] = max_time
    config = SchemathesisConfig.from_dict(data)
    schema = schemathesis.openapi.from_url(openapi_url, config=config)
    tally = _Tally()
    schema.hooks.register_hook_with_name(tally.after_call, "after_call")
    schema.hooks.register_hook_with_name(tally.after_network_error, "after_network_error")
    check_failures: collections.Counter[str] = collections.Counter()
    engine_errors: list[str] = []
    samples: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for by_case in event.recorder.checks.values():
                for check in by_case:
                    if check.failure_info is not None:
                        check_failures[check.name] += 1
                        if len(samples) < 60:
                            failure = check.failure_info.failure
                            samples.append(
                                f"{check.name}: {failure.operation}: {failure.title}: "
                                f"{failure.message[:300]} / {check.failure_info.code_sample[:400]}"
                            )
        elif isinstance(event, events.NonFatalError):
            if not _is_network_error(event.value):
                engine_errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            engine_errors.append(f"fatal: {event.exception!r}")
    return CampaignResult(
        statuses=dict(tally.statuses),
        server_errors=tuple(tally.server_errors),
        check_failures=dict(check_failures),
        engine_errors=tuple(engine_errors),
        failure_samples=tuple(samples),
    )


def _is_network_error(error: Exception) -> bool:
    # Counted by after_network_error already, with the request.
    import requests

    return isinstance(error, requests.RequestException)
