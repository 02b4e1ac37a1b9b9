"""Static checks of jq programs: forbidden builtins and the "proven cheap" classification.

Forbidden names read the host or the process (``env``, ``$ENV``, ``input``, ``inputs``,
``input_filename``, ``import``/``include`` of modules, ``halt``, ``debug``/``stderr`` writing to
the service's stderr, ``get_search_list`` and friends revealing paths); they are rejected at
compile time, wherever they appear in code (also inside string interpolations).

A program is *cheap* when it cannot run away: no recursion, loops or generators over ranges
(``def``, ``reduce``, ``foreach``, ``recurse``, ``..``, ``range``, ``repeat``, ``while``,
``until``, ``limit``, ...), no regular expressions (catastrophic backtracking), no string
repetition (``"x" * 1e10``; ``* n`` with a number literal n of at most 8 is fine), no array
difference (``.a - .b`` is O(n*m); ``- 1`` is fine),
``join`` only with a literal separator, only builtins from an allow-list whose cost is linear
in their input, no variables where data is iterated (``.[] | $x`` is quadratic), at most 256
characters of string literals, at most ``_MAX_CHEAP_REFERENCES`` references to ``.`` or
variables and ``_MAX_CHEAP_AMPLIFIERS`` serialisations (``tojson``, ``@base64``, ...), so the
output is bounded by a small multiple of the input (``[.,.] | [.,.] | ...`` duplicates at most
3**4 = 81 times). ``.[]``, ``map`` and ``select`` are allowed in programs of at most 160
characters: without variables each element is processed once and yields at most the program's
constants (2-byte elements, 160 characters: at most ~80 times the input).
Cheap programs run in-process; all others run in the sandbox worker.
"""

from __future__ import annotations

from ._lexer import Token, object_key_indexes

FORBIDDEN_NAMES = frozenset(
    {
        "env",
        "$ENV",
        "input",
        "inputs",
        "input_filename",
        "input_line_number",
        "import",
        "include",
        "halt",
        "halt_error",
        "debug",
        "stderr",
        "get_search_list",
        "get_prog_origin",
        "get_jq_origin",
        "modulemeta",
        "$__prog_args",
    }
)

_CHEAP_KEYWORDS = frozenset(
    {"if", "then", "elif", "else", "end", "and", "or", "not", "as", "try", "catch"}
)
_CHEAP_BUILTINS = frozenset(
    {
        "abs",
        "group_by",
        "map",
        "map_values",
        "max_by",
        "min_by",
        "sort_by",
        "unique_by",
        "with_entries",
        "add",
        "all",
        "any",
        "arrays",
        "ascii_downcase",
        "ascii_upcase",
        "booleans",
        "ceil",
        "del",
        "delpaths",
        "empty",
        "error",
        "false",
        "first",
        "flatten",
        "floor",
        "from_entries",
        "fromdate",
        "fromdateiso8601",
        "fromjson",
        "getpath",
        "has",
        "in",
        "isinfinite",
        "isnan",
        "isnormal",
        "iterables",
        "join",
        "keys",
        "keys_unsorted",
        "last",
        "length",
        "ltrimstr",
        "max",
        "min",
        "nan",
        "infinite",
        "not",
        "now",
        "null",
        "nulls",
        "numbers",
        "objects",
        "reverse",
        "round",
        "rtrimstr",
        "scalars",
        "select",
        "setpath",
        "sort",
        "split",
        "sqrt",
        "startswith",
        "endswith",
        "strings",
        "to_entries",
        "todate",
        "todateiso8601",
        "tojson",
        "tonumber",
        "tostring",
        "true",
        "type",
        "unique",
        "utf8bytelength",
        "values",
    }
)
_AMPLIFYING_BUILTINS = frozenset({"tojson", "tostring"})
_ITERATING_BUILTINS = frozenset(
    {"map", "map_values", "group_by", "sort_by", "unique_by", "min_by", "max_by", "with_entries"}
)
_NOT_CHEAP_OPERATORS = frozenset({"*=", "..", "?//", "?//=", ";"})
# ``x * n`` with a number literal n of at most this size repeats a string at most n times (and
# multiplies numbers, or merges objects, in linear time): cheap, counted as an amplifier.
_MAX_CHEAP_FACTOR = 8.0
_TERM_ENDS = frozenset({"field", "var", "ident", "num", "strend"})
_MAX_CHEAP_REFERENCES = 12
_MAX_CHEAP_AMPLIFIERS = 2
_MAX_CHEAP_LENGTH = 2000
_MAX_CHEAP_ITERATING_LENGTH = 160
_MAX_CHEAP_LITERAL_CHARS = 256


def forbidden_names(tokens: list[Token]) -> list[str]:
    """The forbidden builtins, keywords and variables used by a program, in source order."""
    keys = object_key_indexes(tokens)
    found: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind in ("ident", "var") and token.text in FORBIDDEN_NAMES and index not in keys:
            found.append(token.text)
    return found


def _is_iteration(tokens: list[Token], index: int) -> bool:
    """Whether the ``[`` at ``index`` starts ``[]`` applied to a term (``.[]``, ``.a[]``)."""
    if index + 1 >= len(tokens) or tokens[index + 1].text != "]":
        return False
    if index == 0:
        return False
    previous = tokens[index - 1]
    return previous.kind in _TERM_ENDS or previous.text in (".", "]", ")", "}", "?")


def is_cheap(source: str, tokens: list[Token]) -> bool:
    """Whether the program is proven cheap enough to evaluate in-process (see module doc)."""
    if len(source) > _MAX_CHEAP_LENGTH:
        return False
    keys = object_key_indexes(tokens)
    references = 0
    amplifiers = 0
    iterates = False
    binds = False
    for index, token in enumerate(tokens):
        if token.kind == "ident":
            if index in keys:
                continue
            if token.text not in _CHEAP_KEYWORDS and token.text not in _CHEAP_BUILTINS:
                return False
            if token.text == "join" and not _literal_argument(tokens, index):
                return False  # join(f) repeats f's value between every pair of elements
            if token.text in _AMPLIFYING_BUILTINS:
                amplifiers += 1
            iterates = iterates or token.text in _ITERATING_BUILTINS
            binds = binds or token.text == "as"
        elif token.kind == "format":
            amplifiers += 1
        elif token.kind == "op":
            if token.text in _NOT_CHEAP_OPERATORS:
                return False
            if token.text == "*":
                if not _small_factor(tokens, index):
                    return False  # string repetition: "x" * 1e10, or .s * .n from data
                amplifiers += 1
            if token.text == "[" and _is_iteration(tokens, index):
                iterates = True
            if token.text in ("-", "-=") and not _number_operand(tokens, index):
                return False  # array difference is O(n * m)
            if token.text == "." and not _follows_term(tokens, index):
                references += 1
        elif token.kind in ("field", "var") and not _follows_term(tokens, index):
            references += 1
            binds = binds or token.kind == "var"
    if iterates and binds:
        return False  # `.[] | $x` or `.[] as $x | .[]` is quadratic in the input
    if iterates and len(source) > _MAX_CHEAP_ITERATING_LENGTH:
        return False  # each element may produce up to the program's length in constants
    return (
        references <= _MAX_CHEAP_REFERENCES
        and amplifiers <= _MAX_CHEAP_AMPLIFIERS
        and _literal_chars(source, tokens) <= _MAX_CHEAP_LITERAL_CHARS
    )


def _literal_chars(source: str, tokens: list[Token]) -> int:
    """An upper bound of the characters in string literals (and their interpolations)."""
    total = 0
    starts: list[int] = []
    for token in tokens:
        if token.kind == "str":
            starts.append(token.position)
        elif token.kind == "strend" and starts:
            total += token.position - starts.pop()
    return total


def _literal_argument(tokens: list[Token], index: int) -> bool:
    """Whether the call at ``index`` has one plain string literal argument: ``join(", ")``."""
    window = [token.kind + token.text for token in tokens[index + 1 : index + 5]]
    return window == ["op(", 'str"', 'strend"', "op)"]


def _number_operand(tokens: list[Token], index: int) -> bool:
    """Whether the ``-`` at ``index`` is unary or has a number literal operand."""
    previous = tokens[index - 1] if index > 0 else None
    if previous is None or (
        previous.kind not in _TERM_ENDS and previous.text not in (")", "]", "}", "?", ".")
    ):
        return True  # unary minus
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return previous.kind == "num" or (following is not None and following.kind == "num")


def _small_factor(tokens: list[Token], index: int) -> bool:
    """Whether the ``*`` at ``index`` has a number literal operand of at most 8 in size."""
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(tokens) and tokens[neighbour].kind == "num":
            try:
                if abs(float(tokens[neighbour].text)) <= _MAX_CHEAP_FACTOR:
                    return True
            except ValueError:
                return False
    return False


def _follows_term(tokens: list[Token], index: int) -> bool:
    if index == 0:
        return False
    previous = tokens[index - 1]
    return previous.kind in ("field", "var") or previous.text in ("]", "?", ".")


def bound_variables(tokens: list[Token]) -> frozenset[str]:
    """Variable names the program binds itself (``as $x``, destructuring, ``def f($a)``, labels).

    Names are without ``$``. A name that is bound somewhere is treated as bound everywhere,
    which is enough to tell the program's own variables from the arguments it reads.
    """
    bound: set[str] = set()
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.text not in ("as", "def", "label"):
            continue
        depth = 0
        for follower in tokens[index + 1 :]:
            if follower.kind == "var":
                bound.add(follower.text[1:])
                if token.text == "label":
                    break
            elif follower.kind == "op":
                if token.text == "def" and follower.text == ":":
                    break
                if follower.text in ("[", "{") or (follower.text == "(" and token.text == "def"):
                    depth += 1
                elif follower.text in ("]", "}", ")"):
                    depth -= 1
                    if depth < 0:
                        break
                elif depth == 0 and follower.text in ("|", "(", ";"):
                    break
    return frozenset(bound)
