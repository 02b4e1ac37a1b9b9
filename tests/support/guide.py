"""The deployment guide the project started from, beside the project (never copied into it).

It is read from ``../shared/seed/deployment-guide.txt``. Tests that need it FAIL when ``CI`` is
set and it is missing, and skip with a reason otherwise.
"""

from __future__ import annotations

import re

import attrs
import yaml

from tests.support.services import unavailable
from tests.support.spec import SPEC

GUIDE = SPEC.parents[1] / "seed" / "deployment-guide.txt"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{2,4} (.+)$", re.MULTILINE)


@attrs.frozen(kw_only=True)
class GuideBlock:
    """One fenced block of the guide: its language, the heading above it, and its text."""

    language: str
    heading: str
    text: str


def require_guide() -> str:
    """The guide's text, or fail (CI) / skip (elsewhere) when it is absent."""
    if not GUIDE.is_file():
        unavailable(
            f"the deployment guide {GUIDE} is absent; put ../shared/seed next to the project"
        )
    return GUIDE.read_text(encoding="utf-8")


def guide_blocks(text: str) -> list[GuideBlock]:
    """Every fenced block of ``text``, in order, with the nearest heading above it."""
    blocks = []
    for fence in _FENCE.finditer(text):
        headings = _HEADING.findall(text, 0, fence.start())
        blocks.append(
            GuideBlock(
                language=fence.group(1),
                heading=headings[-1].strip() if headings else "",
                text=fence.group(2),
            )
        )
    return blocks


def is_application_yaml(block: GuideBlock) -> bool:
    """Whether a YAML block is (part of) an ``application.yaml``, not another tool's file:
    Kubernetes objects (``apiVersion``/``kind``), a container's ``env`` list, Prometheus's
    ``scrape_configs``."""
    if block.language != "yaml":
        return False
    document = yaml.safe_load(block.text)
    foreign = {"apiVersion", "kind", "env", "scrape_configs"}
    return isinstance(document, dict) and not foreign & set(document)
