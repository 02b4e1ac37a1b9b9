"""What `definitions validate` reports for a file: problems apart from what will not run."""

from __future__ import annotations

from pathlib import Path

from workflow_orchestrator.definitions import check_definition_file
from workflow_orchestrator.dsl.validation import ValidationOptions

HEADER = "document: {dsl: '1.0.3', namespace: t, name: s, version: '1.0.0'}\n"
BODY = "do:\n  - one:\n      set: {a: 1}\n"


def test_unreadable_schedule_is_unsupported(tmp_path: Path) -> None:
    """A cron the scheduler cannot read is valid DSL, reported as what will not run."""
    path = tmp_path / "flow.yaml"
    path.write_text(HEADER + "schedule:\n  cron: 'every monday'\n" + BODY)
    report = check_definition_file(path, ValidationOptions())
    assert report.valid
    assert [(p.pointer, p.rule) for p in report.unsupported] == [("/schedule/cron", "schedule")]


def test_problems_hide_nothing_and_files_may_be_unreadable(tmp_path: Path) -> None:
    """A broken document lists its problems; a missing file is one 'file' problem."""
    path = tmp_path / "flow.yaml"
    path.write_text(HEADER.replace("'1.0.0'", "'1'") + BODY)
    report = check_definition_file(path, ValidationOptions())
    assert [str(p) for p in report.problems] == [
        "/document/version: '1' is not a semantic version such as 1.0.0 (pattern)"
    ]
    missing = check_definition_file(tmp_path / "absent.yaml", ValidationOptions())
    assert [str(p) for p in missing.problems] == [
        f"/: cannot read {str(tmp_path / 'absent.yaml')!r}: no such file or directory (file)"
    ]
