"""A small Gherkin reader: features, scenarios, steps and doc strings (what the CTK uses).

Supports ``Feature:``, ``Background:``, ``Scenario:``, the step keywords, ``# comments``,
``@tags`` (a feature's tags apply to each of its scenarios) and triple-quoted doc strings with
an optional media type (``\"\"\"yaml``). Doc string lines are dedented by the indentation of
the opening quotes, as Gherkin specifies.
"""

from __future__ import annotations

from pathlib import Path

import attrs

_STEP_KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ", "* ")


@attrs.frozen(kw_only=True)
class Step:
    """One step; ``keyword`` is the resolved Given/When/Then (``And`` inherits)."""

    keyword: str
    text: str
    doc: str | None = None
    line: int = 0


@attrs.frozen(kw_only=True)
class Scenario:
    """A scenario with the background steps of its feature prepended; ``tags`` are its own
    and its feature's, without the ``@``."""

    feature: str
    name: str
    steps: tuple[Step, ...]
    path: Path
    line: int
    tags: frozenset[str] = frozenset()


class GherkinError(ValueError):
    """A feature file this reader does not understand."""


def parse_feature(path: Path) -> list[Scenario]:
    """The scenarios of the feature file at ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    feature = ""
    background: list[Step] = []
    scenarios: list[tuple[str, int, list[Step], frozenset[str]]] = []
    current: list[Step] | None = None
    feature_tags: frozenset[str] = frozenset()
    tags: set[str] = set()
    last_keyword = "Given"
    index = 0
    while index < len(lines):
        raw = lines[index]
        line = raw.strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            tags.update(tag.lstrip("@") for tag in line.split())
            continue
        if line.startswith("Feature:"):
            feature = line.removeprefix("Feature:").strip()
            feature_tags, tags = frozenset(tags), set()
            continue
        if line.startswith("Background:"):
            current = background
            continue
        if line.startswith(("Scenario:", "Example:")):
            name = line.split(":", 1)[1].strip()
            current = []
            scenarios.append((name, index, current, feature_tags | tags))
            tags = set()
            continue
        keyword = next((k for k in _STEP_KEYWORDS if line.startswith(k)), None)
        if keyword is not None:
            if current is None:
                raise GherkinError(f"{path}:{index}: step outside a scenario: {line!r}")
            resolved = keyword.strip()
            if resolved in ("And", "But", "*"):
                resolved = last_keyword
            last_keyword = resolved
            doc = None
            if index < len(lines) and lines[index].strip().startswith('"""'):
                opening = lines[index]
                indent = len(opening) - len(opening.lstrip())
                body: list[str] = []
                index += 1
                while index < len(lines) and not lines[index].strip().startswith('"""'):
                    body.append(
                        lines[index][indent:]
                        if lines[index][:indent].isspace()
                        else lines[index].lstrip()
                    )
                    index += 1
                if index >= len(lines):
                    raise GherkinError(f"{path}: unterminated doc string")
                index += 1
                doc = "\n".join(body)
            current.append(
                Step(keyword=resolved, text=line[len(keyword) :].strip(), doc=doc, line=index)
            )
            continue
        if current is None:
            continue  # free-form description under "Feature:"
        raise GherkinError(f"{path}:{index}: unexpected line {line!r}")
    return [
        Scenario(
            feature=feature,
            name=name,
            steps=(*background, *steps),
            path=path,
            line=line,
            tags=scenario_tags,
        )
        for name, line, steps, scenario_tags in scenarios
    ]
