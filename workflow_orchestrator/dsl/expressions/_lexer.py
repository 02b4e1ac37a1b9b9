"""A small jq lexer used for static checks of runtime expressions.

It knows just enough jq to tell an identifier that calls a builtin (``env``) from a field
(``.env``), an object key (``{env: 1}``), a variable (``$env``) or text inside a string literal,
including the code inside string interpolations (``"\\(env)"``), which it lexes as code.
Anything it cannot lex is left for jq's own compiler to reject with jq's message.
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.errors import OrchestratorError

_OPERATORS = (
    "?//=",
    "?//",
    "//=",
    "|=",
    "+=",
    "-=",
    "*=",
    "/=",
    "%=",
    "==",
    "!=",
    "<=",
    ">=",
    "//",
    "..",
    "|",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
    "<",
    ">",
    ".",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ":",
    ";",
    "?",
)
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")


@attrs.frozen(kw_only=True)
class Token:
    """One jq token: ``kind`` is ident, field, var, format, num, str, strend or op.

    A string literal is a ``str`` token at its opening quote and a ``strend`` token at its
    closing quote, with the tokens of its interpolations in between.
    """

    kind: str
    text: str
    position: int


class LexError(OrchestratorError, ValueError):
    """The text is not lexable jq; jq's compiler gives the real message."""


def _read_ident(source: str, start: int) -> int:
    end = start
    while end < len(source):
        if source[end] in _IDENT_CHARS:
            end += 1
        elif (
            source.startswith("::", end)
            and end + 2 < len(source)
            and (source[end + 2] in _IDENT_START)
        ):
            end += 2
        else:
            break
    return end


def _read_number(source: str, start: int) -> int:
    end = start
    while end < len(source) and source[end] in _DIGITS:
        end += 1
    if end < len(source) and source[end] == ".":
        end += 1
        while end < len(source) and source[end] in _DIGITS:
            end += 1
    if end < len(source) and source[end] in "eE":
        probe = end + 1
        if probe < len(source) and source[probe] in "+-":
            probe += 1
        if probe < len(source) and source[probe] in _DIGITS:
            end = probe
            while end < len(source) and source[end] in _DIGITS:
                end += 1
    return end


def _read_string(source: str, start: int, tokens: list[Token]) -> int:
    """Lex the string at ``start``; code inside ``\\( ... )`` is appended to ``tokens``."""
    tokens.append(Token(kind="str", text='"', position=start))
    index = start + 1
    while index < len(source):
        char = source[index]
        if char == '"':
            tokens.append(Token(kind="strend", text='"', position=index))
            return index + 1
        if char == "\\":
            if source.startswith("\\(", index):
                tokens.append(Token(kind="op", text="(", position=index + 1))
                index = _lex_into(source, index + 2, tokens, closing=")")
                continue
            index += 2
            continue
        index += 1
    raise LexError("unterminated string")


def _lex_into(source: str, index: int, tokens: list[Token], *, closing: str | None) -> int:
    depth = 0
    while index < len(source):
        char = source[index]
        if char in " \t\r\n":
            index += 1
        elif char == "#":
            newline = source.find("\n", index)
            index = len(source) if newline < 0 else newline + 1
        elif char == '"':
            index = _read_string(source, index, tokens)
        elif char == "$" and index + 1 < len(source) and source[index + 1] in _IDENT_START:
            end = _read_ident(source, index + 1)
            tokens.append(Token(kind="var", text=source[index:end], position=index))
            index = end
        elif char == "@" and index + 1 < len(source) and source[index + 1] in _IDENT_START:
            end = _read_ident(source, index + 1)
            tokens.append(Token(kind="format", text=source[index:end], position=index))
            index = end
        elif char in _DIGITS or (
            char == "." and index + 1 < len(source) and source[index + 1] in _DIGITS
        ):
            end = _read_number(source, index)
            tokens.append(Token(kind="num", text=source[index:end], position=index))
            index = end
        elif char == "." and index + 1 < len(source) and source[index + 1] in _IDENT_START:
            end = _read_ident(source, index + 1)
            tokens.append(Token(kind="field", text=source[index:end], position=index))
            index = end
        elif char in _IDENT_START:
            end = _read_ident(source, index)
            tokens.append(Token(kind="ident", text=source[index:end], position=index))
            index = end
        else:
            for operator in _OPERATORS:
                if source.startswith(operator, index):
                    break
            else:
                raise LexError(f"unexpected character {char!r}")
            if operator == "(":
                depth += 1
            elif operator == ")":
                if depth == 0 and closing == ")":
                    tokens.append(Token(kind="op", text=")", position=index))
                    return index + 1
                depth -= 1
            tokens.append(Token(kind="op", text=operator, position=index))
            index += len(operator)
    if closing is not None:
        raise LexError("unterminated string interpolation")
    return index


def tokenize(source: str) -> list[Token]:
    """Return the tokens of ``source``; raise ``LexError`` if it is not lexable jq."""
    tokens: list[Token] = []
    _lex_into(source, 0, tokens, closing=None)
    return tokens


def object_key_indexes(tokens: list[Token]) -> frozenset[int]:
    """Indexes of identifiers that are object keys (``{env: 1}``, ``{a: 1, env}``), not calls."""
    keys: set[int] = set()
    stack: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind == "op" and token.text in "([{":
            stack.append(token.text)
        elif token.kind == "op" and token.text in ")]}":
            if stack:
                stack.pop()
        elif (
            token.kind == "ident"
            and stack
            and stack[-1] == "{"
            and index > 0
            and tokens[index - 1].text in ("{", ",")
            and index + 1 < len(tokens)
            and tokens[index + 1].text in (":", ",", "}")
        ):
            keys.add(index)
    return frozenset(keys)
