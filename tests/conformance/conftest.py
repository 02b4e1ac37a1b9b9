"""Fixtures of the conformance suite: the CTK folder and the local HTTP stub."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conformance.stub import serve_stub

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "spec" / "serverless-workflow-1.0.3"
CTK_FEATURES = SPEC_DIR / "ctk" / "features"


def require_ctk() -> None:
    """Fail in CI, skip elsewhere, when the CTK folder is absent."""
    if CTK_FEATURES.is_dir():
        return
    message = f"the CTK feature files are not at {CTK_FEATURES}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + "; put the spec checkout there to run the conformance suite")


@pytest.fixture(scope="session")
def stub_hosts() -> Iterator[Mapping[str, str]]:
    """The CTK hosts mapped to the local stub server."""
    with serve_stub() as hosts:
        yield hosts
