"""Aethel lexer: one compiled regular expression with named groups.

Tokens are stored in parallel lists (kind, start, end, text) rather than one object
per token: on a 20,000-line file that halves lexing time, and the parser only ever
needs the kind of the current token.  A token's *kind* is its category (`ident`,
`number`, `string`, `bad`, `eof`), the keyword itself (`intent`, `guard`, ...) or the
punctuation itself (`{`, `==`, `==>`, ...).  Foreign constructs that users and models
often write (`//` and `/* */` comments, `&&`, `||`, `!`, `=`, `.`, strings) are lexed
as tokens of their own so the parser can explain what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add, itemgetter, sub
from typing import Final, TypeVar

T = TypeVar("T")

KEYWORDS: Final = frozenset(
    {"intent", "atomic_batch", "guard", "solve", "verify", "secret", "external"}
)

_OPERATORS: Final = (
    "==>",
    ">=",
    "<=",
    "==",
    "!=",
    "&&",
    "||",
    "=>",
    "=<",
    "-",
    "+",
    "*",
    "/",
    "%",
    "<",
    ">",
    "=",
    "!",
    "(",
    ")",
    "{",
    "}",
    ",",
    ";",
    ":",
    ".",
    "[",
    "]",
)

# Whitespace, then one token (comments are tokens here and are moved out of the stream
# afterwards).  split() returns the (whitespace, token) strings in one flat list
# without creating a Match object per token; offsets are rebuilt from the lengths.
# The empty `\Z` alternative always matches last and becomes `eof`.
_TOKEN_RE: Final = re.compile(
    r"""([ \t\r\n\f\v]*)
    ( [A-Za-z_][A-Za-z0-9_]*
    | [0-9]+(?:\.[0-9]+)?
    | ==>|>=|<=|==|!=|&&|\|\||=>|=<|[-+*%<>=!(){},;:.\[\]]
    | \#[^\n]*
    | //[^\n]* | /\*(?:.|\n)*?(?:\*/|\Z) | /
    | "(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?
    | .
    | \Z )""",
    re.VERBOSE,
)

# kind of a token whose text alone decides it (operators, keywords)
_FIXED_KINDS: Final[dict[str, str]] = {op: op for op in _OPERATORS} | {kw: kw for kw in KEYWORDS}
# otherwise the first character decides it
_FIRST_CHAR_KINDS: Final[dict[str, str]] = (
    {c: "ident" for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"}
    | {c: "number" for c in "0123456789"}
    | {'"': "string", "'": "string", "#": "comment", "/": "foreigncomment"}
)


@dataclass
class Tokens:
    """The token stream of one text; the last token is always `eof`."""

    kinds: list[str]
    starts: list[int]
    ends: list[int]
    texts: list[str]
    comments: list[tuple[int, int]] = field(default_factory=list)  # `#` comments
    foreign_comments: list[tuple[int, int, str]] = field(default_factory=list)  # // and /* */

    def __len__(self) -> int:
        return len(self.kinds)


def tokenize(text: str, base: int = 0) -> Tokens:
    """Split `text` into tokens; never fails (unknown characters become `bad` tokens).

    Offsets start at `base` (a chunk of a larger text is lexed with its own offset).

    Hot path (see the performance target in issue 6): everything per token is done by
    C-level helpers (findall, map, accumulate, a list comprehension over dict lookups).
    """
    # split() with two groups yields ["", ws, token, "", ws, token, ..., tail]; the last
    # one or two matches are the empty `\Z` token.
    parts = _TOKEN_RE.split(text)
    spaces: list[str] = parts[1::3]
    texts: list[str] = parts[2::3]
    while texts and not texts[-1]:
        texts.pop()
    del spaces[len(texts) :]
    token_lengths = list(map(len, texts))
    ends = list(accumulate(map(add, map(len, spaces), token_lengths), initial=base))
    del ends[0]
    starts = list(map(sub, ends, token_lengths))
    # kind = fixed kind of the text, else the kind of its first character: all in C
    by_first_char = map(_FIRST_CHAR_KINDS.get, map(itemgetter(0), texts))
    kinds: list[str] = list(map(_FIXED_KINDS.get, texts, by_first_char))  # type: ignore[arg-type]
    if None in kinds:  # characters that start no token
        kinds = [k or "bad" for k in kinds]
    comments: list[tuple[int, int]] = []
    foreign: list[tuple[int, int, str]] = []
    if "#" in text or "/" in text:
        drop = _positions(kinds, "comment") + _positions(kinds, "foreigncomment")
        if drop:
            drop.sort()
            for i in drop:
                if kinds[i] == "comment":
                    comments.append((starts[i], ends[i]))
                else:
                    foreign.append((starts[i], ends[i], texts[i][:2]))
            kinds, starts, ends, texts = (
                _without(seq, drop) for seq in (kinds, starts, ends, texts)
            )
    end_of_text = base + len(text)
    kinds.append("eof")
    starts.append(end_of_text)
    ends.append(end_of_text)
    texts.append("")
    return Tokens(kinds, starts, ends, texts, comments, foreign)


def _positions(kinds: list[str], kind: str) -> list[int]:
    """Indices of `kind` in `kinds` (list.index scans in C; comments are rare)."""
    found: list[int] = []
    i = -1
    try:
        while True:
            i = kinds.index(kind, i + 1)
            found.append(i)
    except ValueError:
        return found


def _without(seq: list[T], drop: list[int]) -> list[T]:
    """`seq` minus the (sorted) indices in `drop`, copied slice by slice."""
    out: list[T] = []
    prev = 0
    for i in drop:
        out += seq[prev:i]
        prev = i + 1
    out += seq[prev:]
    return out
