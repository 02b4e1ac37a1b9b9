"""How a secret's text becomes its value, shared by the environment and file providers."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SECRET_NAME", "secret_value"]

#: What a secret may be called: letters, digits, ``_``, ``-`` and ``.``, not starting with a
#: dot (so a name can never reach outside a secrets directory, nor its ``..data`` entries).
SECRET_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")


def secret_value(text: str) -> Any:
    """The JSON value of ``text`` when it parses (an object secret), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
