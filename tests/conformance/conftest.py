"""Fixtures of the conformance suite: the CTK folder and the local HTTP stub."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from tests.conformance.stub import serve_stub
from tests.support.services import unavailable
from tests.support.spec import SPEC

SPEC_DIR = SPEC
CTK_FEATURES = SPEC_DIR / "ctk" / "features"


def require_ctk() -> None:
    """Fail in CI, skip elsewhere, when the CTK folder is absent."""
    if not CTK_FEATURES.is_dir():
        unavailable(
            f"the CTK feature files are not at {CTK_FEATURES}; put ../shared/spec next to the "
            "project to run the conformance suite"
        )


@pytest.fixture(scope="session")
def stub_hosts() -> Iterator[Mapping[str, str]]:
    """The CTK hosts mapped to the local stub server."""
    with serve_stub() as hosts:
        yield hosts
