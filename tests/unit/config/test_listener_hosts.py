"""Where the listeners bind: everything by default (a container needs it), only this machine in
the development and local profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import load_config

SHIPPED = Path(__file__).resolve().parents[3] / "config"


def test_default_binds_every_address(tmp_path: Path) -> None:
    """Without a profile both listeners bind 0.0.0.0; managementHost empty means as host."""
    server = load_config(environ={}, cwd=tmp_path).settings.server
    assert (server.host, server.management_host) == ("0.0.0.0", "")


@pytest.mark.parametrize("profile", ["local", "development"])
def test_development_profiles_bind_loopback(profile: str) -> None:
    """`make run` and the development profile listen on 127.0.0.1 only; SERVER_* still work."""
    loaded = load_config(
        config_path=SHIPPED / "application.yaml.example", profile=profile, environ={}
    )
    assert loaded.settings.server.host == "127.0.0.1"
    assert loaded.source_of("server.host") == str(SHIPPED / f"{profile}.yaml")
