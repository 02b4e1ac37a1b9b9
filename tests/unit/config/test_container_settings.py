"""``workflows.run.container``: the container runtime's settings, defaults and error texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, ContainerSettings, load_config


def _load(folder: Path, text: str) -> ContainerSettings:
    path = folder / "config" / "application.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return load_config(cwd=folder, environ={}).settings.workflows.run.container


def test_defaults_run_no_container_and_confine_those_enabled(tmp_path: Path) -> None:
    """No runtime by default; once one is set: no network, no host path, bounded resources."""
    settings = load_config(cwd=tmp_path, environ={}).settings.workflows.run.container
    assert settings == ContainerSettings(
        runtime="none",
        timeout=600.0,
        binary="",
        network="none",
        port_address="127.0.0.1",
        allowed_host_paths=(),
        memory=512 * 1024 * 1024,
        cpus=1.0,
        pids_limit=256,
        sweep_interval=60.0,
        namespaces=("*",),
    )


def test_settings_are_read_from_yaml_in_camel_case(tmp_path: Path) -> None:
    """Every key is camelCase; memory takes a size, the durations a duration."""
    settings = _load(
        tmp_path,
        "workflows:\n  run:\n    container:\n      runtime: docker\n      timeout: 5m\n"
        "      binary: /usr/local/bin/docker\n      network: bridge\n      portAddress: 0.0.0.0\n"
        "      allowedHostPaths: [/srv/shared]\n      memory: 1GB\n      cpus: 0.5\n"
        "      pidsLimit: 0\n      sweepInterval: 10m\n      namespaces: [ops]\n",
    )
    assert settings == ContainerSettings(
        runtime="docker",
        timeout=300.0,
        binary="/usr/local/bin/docker",
        network="bridge",
        port_address="0.0.0.0",
        allowed_host_paths=("/srv/shared",),
        memory=1024**3,
        cpus=0.5,
        pids_limit=0,
        sweep_interval=600.0,
        namespaces=("ops",),
    )


def test_an_unknown_runtime_names_the_choices(tmp_path: Path) -> None:
    """A runtime other than none, podman or docker is refused with the choices."""
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "workflows:\n  run:\n    container:\n      runtime: podmn\n")
    (problem,) = raised.value.problems
    assert problem.key == "workflows.run.container.runtime"
    assert (
        problem.message
        == "expected one of none, podman, docker, got 'podmn'; did you mean 'podman'?"
    )
