"""The aiormq internals under the RabbitMQ fast paths: present in the installed aiormq with the
parameters they were checked with, and reported by name and version when they are not.

A failure of the first test means the installed aiormq is not the one the fast paths were
checked against: read ``events/_rabbitmq/_internals.py``, check the new version's channel, then
update the internals, ``CHECKED_AIORMQ`` and setup.cfg's range.
"""

from __future__ import annotations

import logging
from typing import Any

import aiormq
import pytest
from pamqp import commands as spec

from workflow_orchestrator.events._rabbitmq import _internals
from workflow_orchestrator.events._rabbitmq._internals import (
    CHECKED_AIORMQ,
    CONSUME_INTERNALS,
    PUBLISH_INTERNALS,
    Internal,
    installed_version,
    missing_methods,
    report_fallback,
)


@pytest.fixture
def unreported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process in which no fallback was reported yet."""
    monkeypatch.setattr(_internals, "_reported", set())


def test_installed_aiormq_has_every_method_the_fast_paths_use() -> None:
    """Every method internal exists in the installed aiormq with the checked parameters."""
    missing = missing_methods(aiormq.Channel, (*CONSUME_INTERNALS, *PUBLISH_INTERNALS))
    assert not missing, (
        f"aiormq {installed_version()} lacks or changed {', '.join(map(str, missing))}; the "
        f"RabbitMQ fast paths were checked against aiormq {CHECKED_AIORMQ}"
    )


def test_a_changed_signature_is_reported_by_name() -> None:
    """A method with other parameters counts as missing, named with the parameters wanted."""

    class Changed(aiormq.Channel):
        async def _read_content(self, frame: Any) -> Any:  # type: ignore[override]
            return frame

    (missing,) = missing_methods(Changed, CONSUME_INTERNALS)
    assert str(missing) == "async aiormq Channel._read_content(frame, header)"


def test_a_method_that_is_no_coroutine_any_more_is_missing() -> None:
    """A consume internal that became a plain function is reported."""

    class Changed(aiormq.Channel):
        def _get_frame(self) -> Any:  # type: ignore[override]
            return spec.Basic.Ack()

    assert missing_methods(Changed, CONSUME_INTERNALS) == [CONSUME_INTERNALS[1]]


def test_extra_parameters_with_defaults_are_accepted() -> None:
    """A new optional parameter does not turn a fast path off."""

    class Extended(aiormq.Channel):
        async def _read_content(self, frame: Any, header: Any, strict: bool = True) -> Any:  # type: ignore[override]
            return frame

    assert missing_methods(Extended, CONSUME_INTERNALS) == []


def test_attributes_are_described_with_their_kind() -> None:
    """An attribute internal names its owner and the type it must have."""
    assert [str(i) for i in PUBLISH_INTERNALS[:2]] == [
        "aiormq Channel.lock (async context manager)",
        "aiormq Channel.delivery_tag (int)",
    ]


def test_fallback_is_reported_once_per_path(
    unreported: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The WARNING names the path, the internals, the installed and the checked version, once."""
    gone = Internal("Channel", "_gone", parameters=("frame",), coroutine=True)
    with caplog.at_level(logging.WARNING, logger=_internals.__name__):
        report_fallback("publish", [gone], "publishing one at a time")
        report_fallback("publish", [gone], "publishing one at a time")
        report_fallback("consume", [gone], "consuming through callbacks")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"RabbitMQ {path} fast path off: aiormq {installed_version()} lacks or changed async "
        f"aiormq Channel._gone(frame) (checked against aiormq {CHECKED_AIORMQ}); {instead}; "
        "install the aiormq version setup.cfg names to get it back"
        for path, instead in (
            ("publish", "publishing one at a time"),
            ("consume", "consuming through callbacks"),
        )
    ]
