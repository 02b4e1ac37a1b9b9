"""``security.outbound.proxy``: empty by default, http://host:port when set, checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, load_config


def test_no_proxy_by_default(tmp_path: Path) -> None:
    """Calls go direct unless a proxy is configured (and never through HTTP_PROXY)."""
    environ = {"HTTP_PROXY": "http://proxy.example:3128"}
    assert load_config(environ=environ, cwd=tmp_path).settings.security.outbound.proxy == ""


def _write(folder: Path, proxy: str) -> None:
    text = f"security:\n  outbound:\n    proxy: {proxy}\n"
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "application.yaml").write_text(text, encoding="utf-8")


def test_a_configured_proxy_is_read(tmp_path: Path) -> None:
    """security.outbound.proxy: http://host:port."""
    _write(tmp_path, "http://proxy.example:3128")
    loaded = load_config(environ={}, cwd=tmp_path)
    assert loaded.settings.security.outbound.proxy == "http://proxy.example:3128"


@pytest.mark.parametrize(
    "bad", ["https://proxy.example:3128", "http://proxy.example", "http://proxy.example:3128/p"]
)
def test_a_proxy_that_is_not_http_host_port_is_refused(tmp_path: Path, bad: str) -> None:
    """The error names the setting."""
    _write(tmp_path, bad)
    with pytest.raises(ConfigError, match=r"security\.outbound\.proxy"):
        load_config(environ={}, cwd=tmp_path)
