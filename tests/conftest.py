"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.containers import Podman, open_podman
from tests.support.kafka import KafkaBroker, open_kafka_broker
from tests.support.services import create_database, drop_database, url_for


@pytest.fixture
def database_name() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = create_database()
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def database_url(database_name: str) -> str:
    """The libpq URL of the test's own database."""
    return url_for(database_name)


@pytest.fixture
async def kafka_broker(tmp_path: Path) -> AsyncIterator[KafkaBroker]:
    """A tansu Kafka broker with memory storage for one test (logs in ``tmp_path``)."""
    async with open_kafka_broker(log_folder=tmp_path) as broker:
        yield broker


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """Podman with the test images (``hello-world``, ``alpine``) built from busybox-static."""
    with open_podman() as podman:
        yield podman
