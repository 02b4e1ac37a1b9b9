"""The driver errors that one row of a batch can cause: retry the batch's rows one at a time.

A batched statement fails as a whole when PostgreSQL refuses one row's data (a data exception
of SQLSTATE class 22, such as a NUL character in ``jsonb``; a program limit of class 54, such
as nesting too deep; an integrity violation of class 23) or the driver cannot encode one
argument. Other failures (a lost connection, a timeout, a deadlock) are not tied to a row,
so committing the rows one at a time would not help.
"""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions._base as _asyncpg_base

__all__ = ["ROW_ERRORS"]

ROW_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22 (the server refused a value)
    _asyncpg_base.DataError,  # the driver could not encode an argument
    asyncpg.ProgramLimitExceededError,  # class 54 (too deep, too large)
    asyncpg.IntegrityConstraintViolationError,  # class 23
)
