"""The proto files of a call: read from ``workflows.calls.grpc.protoDirectory`` or downloaded.

``proto.endpoint`` comes from a user's definition, so where it may point is narrow:

- ``file://`` names a file under the configured proto directory only (``file://app/x.proto``
  is ``<protoDirectory>/app/x.proto``; an absolute ``file:///...`` path must lie inside it).
  Paths are resolved with their symbolic links before the check, so neither ``..`` nor a link
  leads out. Without a configured directory every ``file://`` endpoint is refused, naming the
  setting.
- ``http://`` and ``https://`` are downloaded through the service's HTTP client, so the
  outbound policy decides where the download may go, like any other call.

Imports are followed as protoc would with two include roots: the folder of the main file, then
(for ``file://``) the proto directory; ``google/protobuf/*`` come from grpcio-tools. A call
loads at most ``MAX_FILES`` files of at most ``workflows.calls.grpc.maxProtoSize`` bytes
together. Each file keeps its *virtual path* (the name imports use); the compiler writes them
under a private folder by that path, so a path is checked to be a plain relative one first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import attrs
import trio

from workflow_orchestrator.adapters.grpc._errors import SETTINGS, configuration_error
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse, require_success
from workflow_orchestrator.errors import OrchestratorError

__all__ = ["MAX_FILES", "ProtoFiles", "ProtoLoader"]

MAX_FILES = 64
DIRECTORY_SETTING = f"{SETTINGS}.protoDirectory"
SIZE_SETTING = f"{SETTINGS}.maxProtoSize"
_WELL_KNOWN = "google/protobuf/"
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]*)"\s*;', re.MULTILINE)
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

HttpSend = Callable[[HttpRequest], Awaitable[HttpResponse]]


@attrs.frozen(kw_only=True)
class ProtoFiles:
    """The proto files of one call, the main file first, each as (virtual path, content).

    ``origin`` is the endpoint they came from, for messages.
    """

    origin: str
    files: tuple[tuple[str, bytes], ...]

    @property
    def main(self) -> str:
        """The virtual path of the main file."""
        return self.files[0][0]

    def digest(self) -> str:
        """The SHA-256 of the names and contents: equal protos share one compilation."""
        hashed = hashlib.sha256()
        for name, content in self.files:
            hashed.update(f"{name}\0{len(content)}\0".encode())
            hashed.update(content)
        return hashed.hexdigest()


class _Escape(OrchestratorError):
    """A path that resolves outside the proto directory."""


def _virtual(path: str) -> bool:
    """A plain relative path: segments of safe characters, no ``..``, not absolute."""
    parts = path.split("/")
    return all(_SEGMENT.fullmatch(part) and part not in (".", "..") for part in parts)


def imports_of(content: bytes) -> list[str]:
    """The files ``content`` imports, in order (comments ignored)."""
    text = _COMMENTS.sub("", content.decode("utf-8", "replace"))
    return _IMPORT.findall(text)


def _read_under(root: Path, candidate: Path, limit: int) -> bytes | None:
    """The first ``limit + 1`` bytes of ``candidate`` (None if there is no such file), after
    checking that it resolves inside ``root`` (symbolic links followed)."""
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise _Escape(str(candidate))
    if not resolved.is_file():
        return None
    with resolved.open("rb") as file:
        return file.read(limit + 1)


def _read_first(root: Path, candidates: tuple[Path, ...], limit: int) -> bytes | None:
    """The first of ``candidates`` that exists (see `_read_under`), or None."""
    for candidate in candidates:
        found = _read_under(root, candidate, limit)
        if found is not None:
            return found
    return None


@attrs.define(eq=False)
class ProtoLoader:
    """Loads the proto files of ``proto.endpoint`` values, within the limits.

    ``directory`` is ``protoDirectory`` (empty: ``file://`` refused); ``send`` performs HTTP
    requests (the service's client, behind the outbound policy; None: ``http(s)://`` refused),
    to URLs rewritten by ``mapped`` (the host map); ``max_size`` bounds the files of one call
    together; ``timeout`` each download.
    """

    directory: str
    send: HttpSend | None
    max_size: int
    timeout: float
    mapped: Callable[[str], str] = str

    async def load(self, uri: str, headers: dict[str, str], where: str) -> ProtoFiles:
        """The main file at ``uri`` and everything it imports, transitively."""
        scheme = urlsplit(uri).scheme.lower()
        if scheme == "file":
            return await self._load_files(uri, where)
        if scheme in ("http", "https"):
            return await self._load_remote(uri, headers, where)
        raise configuration_error(
            f"proto endpoint {uri!r} is neither file:// (under {DIRECTORY_SETTING}) nor "
            "http(s)://; point it at one of them",
            where,
        )

    async def _collect(
        self,
        uri: str,
        main: tuple[str, bytes],
        fetch: Callable[[str], Awaitable[bytes | None]],
        where: str,
    ) -> ProtoFiles:
        """``main`` and its imports, breadth first, each fetched once by virtual path."""
        files = [main]
        seen = {main[0]}
        total = self._checked_size(uri, len(main[1]), 0, where)
        position = 0
        while position < len(files):
            name, content = files[position]
            position += 1
            for imported in imports_of(content):
                if imported.startswith(_WELL_KNOWN) or imported in seen:
                    continue
                if not _virtual(imported):
                    raise configuration_error(
                        f"proto {uri}: {name} imports {imported!r}, which is not a plain "
                        "relative path; import files by a path below the main file's folder",
                        where,
                    )
                if len(files) >= MAX_FILES:
                    raise configuration_error(
                        f"proto {uri} imports more than {MAX_FILES} files; merge them", where
                    )
                found = await fetch(imported)
                if found is None:
                    raise configuration_error(
                        f"proto {uri}: {name} imports {imported!r}, which is not found beside "
                        "the main file",
                        where,
                    )
                total = self._checked_size(uri, len(found), total, where)
                seen.add(imported)
                files.append((imported, found))
        return ProtoFiles(origin=uri, files=tuple(files))

    def _checked_size(self, uri: str, size: int, total: int, where: str) -> int:
        total += size
        if total > self.max_size:
            raise configuration_error(
                f"the proto files of {uri} are larger than {self.max_size:,} bytes, the limit "
                f"set by {SIZE_SETTING}; make them smaller or raise the setting",
                where,
            )
        return total

    async def _load_files(self, uri: str, where: str) -> ProtoFiles:
        if not self.directory:
            raise configuration_error(
                f"proto endpoint {uri} names a local file, and {DIRECTORY_SETTING} is not set; "
                f"put the file in a folder set as {DIRECTORY_SETTING}, or serve it over https",
                where,
            )
        root = await trio.to_thread.run_sync(lambda: Path(self.directory).resolve())
        path = uri[len("file://") :].split("?", 1)[0].split("#", 1)[0]
        relative = PurePosixPath(path)
        main = Path(path) if relative.is_absolute() else root / path
        limit = self.max_size

        async def read(candidates: tuple[Path, ...], shown: str) -> bytes | None:
            try:
                return await trio.to_thread.run_sync(_read_first, root, candidates, limit)
            except _Escape:
                raise configuration_error(
                    f"proto endpoint {uri}: {shown} resolves outside {DIRECTORY_SETTING}; "
                    "name a file inside that folder (links and '..' may not lead out of it)",
                    where,
                ) from None
            except OSError as error:
                raise configuration_error(
                    f"proto endpoint {uri}: {shown} cannot be read ({error.strerror})", where
                ) from None

        content = await read((main,), path)
        if content is None:
            raise configuration_error(
                f"proto endpoint {uri}: there is no file {path} under {DIRECTORY_SETTING}", where
            )
        folder = main.parent

        async def fetch(imported: str) -> bytes | None:
            return await read((folder / imported, root / imported), imported)

        return await self._collect(uri, (main.name, content), fetch, where)

    async def _load_remote(self, uri: str, headers: dict[str, str], where: str) -> ProtoFiles:
        if self.send is None:
            raise configuration_error(
                f"proto endpoint {uri} cannot be downloaded here; use file:// under "
                f"{DIRECTORY_SETTING}",
                where,
            )

        async def download(url: str) -> bytes | None:
            assert self.send is not None
            response = await self.send(
                HttpRequest(
                    method="GET",
                    url=self.mapped(url),
                    headers={"accept": "text/plain, */*", **headers},
                    timeout=self.timeout,
                    max_body_size=self.max_size,
                )
            )
            if response.status == 404 and url != uri:
                return None
            require_success(response, f"GET {url} (a proto file)", where)
            return response.body

        main_name = PurePosixPath(urlsplit(uri).path).name or "main.proto"
        if not _virtual(main_name):
            main_name = "main.proto"
        content = await download(uri)
        assert content is not None

        async def fetch(imported: str) -> bytes | None:
            return await download(urljoin(uri, imported))

        return await self._collect(uri, (main_name, content), fetch, where)
