"""Compilation of runtime expressions: strict/loose detection, static checks, tier choice.

A ``CompiledExpression`` is immutable and shared by every instance that evaluates it. It knows
its *tier*: ``path`` (read without jq), ``inline`` (jq in-process, proven cheap) or ``sandbox``
(jq in the engine's ``ExpressionSandbox``: killable worker processes with a CPU deadline).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs
import jq

from ._analysis import bound_variables, forbidden_names, is_cheap
from ._errors import ExpressionError, jq_detail
from ._lexer import LexError, tokenize
from ._paths import PlainPath, parse_plain_path

ARGUMENT_NAMES = frozenset(
    {"context", "input", "output", "secrets", "task", "workflow", "runtime", "authorization"}
)
MAX_EXPRESSION_LENGTH = 20_000
_STRICT = re.compile(r"\A\s*\$\{(?P<body>.*)\}\s*\Z", re.DOTALL)

Tier = Literal["path", "inline", "sandbox"]


def is_runtime_expression(value: Any) -> bool:
    """Whether ``value`` is a strict-mode runtime expression: a string ``${ ... }``."""
    return isinstance(value, str) and _STRICT.match(value) is not None


@attrs.frozen(kw_only=True)
class CompiledExpression:
    """A checked, compiled runtime expression; build it with ``ExpressionEngine.compile``.

    ``source`` is the text as written (``${ .a }`` or ``.a``); ``program`` is the jq text that
    runs; ``arguments`` the names (without ``$``) of the variables it reads from the arguments
    (the standard ``ARGUMENT_NAMES`` or names a task adds, such as a ``for.each`` item); an
    argument that is not passed is ``null``. ``tier`` says how it runs.
    """

    source: str
    program: str
    arguments: frozenset[str]
    tier: Tier
    plain_path: PlainPath | None = attrs.field(default=None, repr=False)
    wrapped: str = attrs.field(repr=False)
    _jq: Any = attrs.field(default=None, eq=False, repr=False, alias="jq_program")


def compile_expression(source: str) -> CompiledExpression:
    """Check and compile ``source`` (strict ``${ ... }`` or loose jq text)."""
    if not isinstance(source, str):
        raise ExpressionError(repr(source), "a runtime expression must be a string")
    strict = _STRICT.match(source)
    program = strict.group("body") if strict is not None else source
    if not program.strip():
        raise ExpressionError(source, "the expression is empty; write a jq filter such as .name")
    if len(program) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            source,
            f"the expression is {len(program)} characters long; "
            f"the limit is {MAX_EXPRESSION_LENGTH}",
        )
    try:
        tokens = tokenize(program)
    except LexError as error:
        raise ExpressionError(source, f"is not valid jq: {error}") from None
    forbidden = forbidden_names(tokens)
    if forbidden:
        names = ", ".join(dict.fromkeys(forbidden))
        raise ExpressionError(
            source,
            f"uses {names}, which runtime expressions may not use "
            "(no environment, input, module, halt or debug builtins); remove it",
        )
    referenced = frozenset(t.text[1:] for t in tokens if t.kind == "var")
    variables = referenced - bound_variables(tokens) - {"__loc__"}
    if variables:
        bindings = ", ".join(f'"{name}": ${name}' for name in sorted(variables))
        wrapped = f". as [$__wo_data, {{{bindings}}}] | $__wo_data | ({program}\n)"
    else:
        wrapped = f".[0] | ({program}\n)"
    try:
        jq_program = jq.compile(wrapped)
    except ValueError as wrapped_error:
        # Compile the bare text again only to report jq's message with the user's positions.
        try:
            jq.compile(program, args=dict.fromkeys(variables))
        except ValueError as error:
            raise ExpressionError(source, f"is not valid jq: {jq_detail(error)}") from None
        raise ExpressionError(source, f"is not valid jq: {jq_detail(wrapped_error)}") from None
    plain_path = parse_plain_path(program, variables)
    tier: Tier
    if plain_path is not None:
        tier = "path"
    elif is_cheap(program, tokens):
        tier = "inline"
    else:
        tier = "sandbox"
    return CompiledExpression(
        source=source,
        program=program,
        arguments=variables,
        tier=tier,
        plain_path=plain_path,
        wrapped=wrapped,
        jq_program=jq_program,
    )
