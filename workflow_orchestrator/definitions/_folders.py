"""Register the definitions found in the configured folders (``definitions.paths``) at startup.

Every ``*.yaml``, ``*.yml`` and ``*.json`` file below each path (or the path itself, when it is
a file) is one definition whose id is the file name without its extension
(``examples/order_processing.yaml`` is ``order_processing``: DSL names may not contain ``_``,
definition ids may), unless the file is an ``{"id", "definition"}`` wrapper. All files are
read and validated before anything is stored; if any has a problem, none is registered and the
error lists every problem as ``FILE: POINTER: message (rule)``. Registering is idempotent, so
restarting with the same files changes nothing; a changed file with an unchanged version is a
conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import trio

from workflow_orchestrator.definitions._submission import (
    InvalidSubmission,
    Submission,
    parse_submission,
    register_submission,
)
from workflow_orchestrator.dsl.validation import InvalidDefinition, ValidationOptions
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage import Database, DefinitionConflict
from workflow_orchestrator.storage.definitions import RegistrationResult

__all__ = ["DefinitionFilesInvalid", "find_definition_files", "register_definition_files"]

_SUFFIXES = {".yaml", ".yml", ".json"}


class DefinitionFilesInvalid(OrchestratorError, ValueError):
    """Definition files from ``definitions.paths`` cannot be registered; ``problems`` says why."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"definitions from definitions.paths were not registered ({len(self.problems)} "
            f"problems); fix the files or remove them from the folder:\n{lines}"
        )


def find_definition_files(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    """The definition files below ``paths`` (sorted), and a problem for each missing path."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES))
        else:
            problems.append(f"{path}: no such file or folder (listed in definitions.paths)")
    return files, problems


def _read_all(
    paths: Iterable[str], options: ValidationOptions
) -> tuple[list[tuple[Path, Submission]], list[str]]:
    files, problems = find_definition_files(paths)
    submissions: list[tuple[Path, Submission]] = []
    for path in files:
        try:
            submission = parse_submission(
                path.read_bytes(), definition_id=path.stem, options=options
            )
            submissions.append((path, submission))
        except InvalidDefinition as invalid:
            problems.extend(f"{path}: {problem}" for problem in invalid.problems)
        except (InvalidSubmission, OSError) as exc:
            problems.append(f"{path}: {exc}")
    seen: dict[tuple[str, str], Path] = {}
    for path, submission in submissions:
        key = (submission.definition_id, submission.version)
        if key in seen:
            problems.append(
                f"{path}: definition {key[0]!r} version {key[1]!r} is also in {seen[key]}; "
                "keep one file per id and version"
            )
        seen[key] = path
    return submissions, problems


async def register_definition_files(
    database: Database, paths: Iterable[str], options: ValidationOptions | None = None
) -> list[RegistrationResult]:
    """Validate every file, then register them all; raises ``DefinitionFilesInvalid``."""
    submissions, problems = await trio.to_thread.run_sync(
        _read_all, list(paths), options or ValidationOptions()
    )
    if problems:
        raise DefinitionFilesInvalid(problems)
    results: list[RegistrationResult] = []
    conflicts: list[str] = []
    for path, submission in submissions:
        try:
            results.append(await register_submission(database, submission))
        except DefinitionConflict as exc:
            conflicts.append(f"{path}: {exc}")
    if conflicts:
        raise DefinitionFilesInvalid(conflicts)
    return results
