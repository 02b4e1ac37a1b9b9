"""The ``files`` secrets provider: one file per secret in a directory.

The directory is typically a mounted Kubernetes Secret: each key is a file whose name is the
secret's, a symbolic link into ``..data/``, itself a link to the current timestamped copy, so an
updated Secret is read at the next call (nothing is cached). Links are followed, but the file
reached must lie inside the directory; names starting with a dot and names with a ``/`` are
never secrets. A file larger than ``security.secrets.files.maxSize`` is refused. One trailing
newline is dropped (``echo`` writes one); the rest is JSON when it parses, else text.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import trio

from workflow_orchestrator.security._secret_errors import SecretProviderError
from workflow_orchestrator.security._secret_values import SECRET_NAME, secret_value

__all__ = ["FileSecrets"]


@attrs.frozen(kw_only=True)
class FileSecrets:
    """Secrets from the files of ``directory`` (see the module docstring)."""

    directory: str
    max_size: int = 64 * 1024
    name: str = "files"

    def where(self, name: str) -> str:
        return f"file {os.path.join(self.directory, name)}"

    async def read(self, name: str) -> Any:
        if not SECRET_NAME.match(name):
            return None
        text = await trio.to_thread.run_sync(self._read_text, name)
        if text is None:
            return None
        return secret_value(text.removesuffix("\n").removesuffix("\r"))

    def close(self) -> None:
        return None

    def _read_text(self, name: str) -> str | None:
        root = os.path.realpath(self.directory)
        real = os.path.realpath(os.path.join(root, name))
        if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
            return None
        try:
            with open(real, "rb") as file:
                data = file.read(self.max_size + 1)
        except FileNotFoundError:
            return None  # the Secret was updated meanwhile and the key removed
        except OSError as error:
            raise SecretProviderError(
                self.name, f"cannot read {self.where(name)!r}: {error.strerror or error}"
            ) from None
        if len(data) > self.max_size:
            raise SecretProviderError(
                self.name,
                f"{self.where(name)} is larger than {self.max_size} bytes; raise "
                "security.secrets.files.maxSize if it is really a secret",
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretProviderError(self.name, f"{self.where(name)} is not UTF-8 text") from None
