"""``run.container`` with rootless podman: every CLI command of the adapter run by an ordinary
user (``nobody``, with subordinate ids in /etc/subuid and /etc/subgid, as ``.ci/run`` sets up).

Only as root: ``workflows.run.container.binary`` is a wrapper that switches to ``nobody``
(``setpriv``) and runs podman there, with the user's storage, configuration and runtime
folders in the test's own folder, like the systemd unit's check as ``nobody``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.support.containers import GREETING, Podman, build_images, containers_conf
from tests.support.services import unavailable
from workflow_orchestrator.adapters.containers import container_runtime, default_name
from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl import ErrorType, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall

pytestmark = [
    pytest.mark.integration,
]

# As root the test switches to nobody; an ordinary user runs rootless podman as itself.
AS_ROOT = os.geteuid() == 0
USER = "nobody" if AS_ROOT else pwd.getpwuid(os.geteuid()).pw_name


def _has_subordinate_ids(user: str) -> bool:
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return False
        if not any(line.split(":")[0] == user for line in lines):
            return False
    return True


@pytest.fixture
def rootless() -> Iterator[Podman]:
    """Podman as an ordinary user (``nobody`` when the tests run as root) through a wrapper
    program, with the test images built."""
    podman = shutil.which("podman")
    if podman is None or (AS_ROOT and shutil.which("setpriv") is None):
        unavailable("podman and setpriv are needed; install podman (util-linux has setpriv)")
        raise AssertionError("unreachable")
    if not _has_subordinate_ids(USER):
        unavailable(
            f"{USER} has no subordinate ids; add them as .ci/run does: usermod --add-subuids "
            f"200000-265535 --add-subgids 200000-265535 {USER}"
        )
    with tempfile.TemporaryDirectory(prefix="wo-rootless-") as name:
        folder = Path(name)
        folder.chmod(0o777)
        for private in ("home", "run"):
            (folder / private).mkdir(mode=0o700)
            if AS_ROOT:
                shutil.chown(folder / private, USER)
        switch = f"setpriv --reuid {USER} --regid nogroup --clear-groups -- " if AS_ROOT else ""
        wrapper = folder / "podman-as-user"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {switch}env -i "
            f"PATH=/usr/local/bin:/usr/bin:/bin HOME={folder}/home "
            f"XDG_RUNTIME_DIR={folder}/run CONTAINERS_CONF={containers_conf(folder)} "
            f'{podman} "$@"\n'
        )
        wrapper.chmod(0o755)
        as_user = Podman(binary=str(wrapper), environment={"PATH": os.environ.get("PATH", "")})
        build_images(as_user, folder)
        try:
            yield as_user
        finally:
            as_user.run("system", "reset", "--force", check=False)


async def test_an_ordinary_user_runs_containers(rootless: Podman) -> None:
    """Rootless podman runs the adapter's containers: root inside is the user outside, stdin
    and the image's files are there, nothing else on stderr; a timeout stops the container.
    The machine's cgroup v1 makes rootless podman ignore resource limits with a warning on
    stderr, so they are off here (on cgroup v2 they apply rootless too)."""
    settings = ContainerSettings(
        runtime="podman", binary=rootless.binary, memory=0, cpus=0, pids_limit=0
    )
    containers = container_runtime(settings, max_output=1 << 20, environment=rootless.environment)

    def call(command: str, *, timeout: float | None = None) -> ServiceCall:
        return ServiceCall(
            kind="container",
            arguments={
                "image": "alpine",
                "command": command,
                "stdin": "from stdin\n",
                "lifetime": {"cleanup": "always"},
            },
            key=f"{uuid.uuid4()}/do/0/run",
            task_ref="/do/0/run",
            timeout=timeout,
            namespace="test",
        )

    with trio.fail_after(60):
        answer = await containers.call(call("head -n 1 /proc/self/uid_map; cat; /hello"))
        slow = call("sleep 60", timeout=1)
        with pytest.raises(WorkflowError) as raised:
            await containers.call(slow)
    assert answer["code"] == 0 and answer["stderr"] == "", answer
    uid_map = answer["stdout"].splitlines()[0].split()
    assert uid_map[:2] == ["0", str(pwd.getpwnam(USER).pw_uid)]
    assert answer["stdout"].splitlines()[1:] == [
        "from stdin",
        "",
        GREETING,
        "This message shows that your installation appears to be working correctly.",
    ]
    assert raised.value.problem.type == ErrorType.TIMEOUT
    assert not rootless.exists(default_name(slow))
