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
from operator import add, sub
from typing import Final

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

# Whitespace and comments ("trivia"), then one token.  split() returns the (trivia,
# token) strings in one flat list without creating a Match object per token; offsets
# are rebuilt from the lengths.  Comments are located afterwards by _COMMENT_RE, only
# inside the trivia that contain one.  The `(?=(...))\\1` wrapper makes the trivia
# atomic (Python 3.10 has no `(?>...)`): without it, trailing comments with no token
# after them would be re-split by backtracking into bogus tokens.  The empty `\Z`
# alternative always matches last: it carries the trailing trivia and becomes `eof`.
_TOKEN_RE: Final = re.compile(
    r"""(?=((?:[ \t\r\n\f\v]+|\#[^\n]*|//[^\n]*|/\*(?:.|\n)*?(?:\*/|\Z))*))\1
    ( [A-Za-z_][A-Za-z0-9_]*
    | [0-9]+(?:\.[0-9]+)?
    | ==>|>=|<=|==|!=|&&|\|\||=>|=<|[-+*/%<>=!(){},;:.\[\]]
    | "(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?
    | .
    | \Z )""",
    re.VERBOSE,
)
_COMMENT_RE: Final = re.compile(r"\#[^\n]*|//[^\n]*|/\*(?:.|\n)*?(?:\*/|\Z)")

# kind of a token whose text alone decides it (operators, keywords)
_FIXED_KINDS: Final[dict[str, str]] = {op: op for op in _OPERATORS} | {kw: kw for kw in KEYWORDS}
# otherwise the first character decides it
_FIRST_CHAR_KINDS: Final[dict[str, str]] = (
    {c: "ident" for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"}
    | {c: "number" for c in "0123456789"}
    | {'"': "string", "'": "string"}
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


def tokenize(text: str) -> Tokens:
    """Split `text` into tokens; never fails (unknown characters become `bad` tokens).

    Hot path (see the performance target in issue 6): everything per token is done by
    C-level helpers (findall, map, accumulate, a list comprehension over dict lookups).
    """
    # split() with two groups yields ["", trivia, token, "", trivia, token, ..., tail];
    # the last one or two matches are the empty `\Z` token (carrying trailing trivia).
    parts = _TOKEN_RE.split(text)
    spaces: list[str] = parts[1::3]
    texts: list[str] = parts[2::3]
    while texts and not texts[-1]:
        texts.pop()
    count = len(texts)
    tail = spaces[count] if count < len(spaces) else ""
    del spaces[count:]
    token_lengths = list(map(len, texts))
    ends = list(accumulate(map(add, map(len, spaces), token_lengths)))
    starts = list(map(sub, ends, token_lengths))
    fixed = _FIXED_KINDS.get
    first = _FIRST_CHAR_KINDS.get
    kinds = [fixed(t) or first(t[0], "bad") for t in texts]
    comments: list[tuple[int, int]] = []
    foreign: list[tuple[int, int, str]] = []
    if "#" in text or "/" in text:
        spaces.append(tail)
        starts.append(len(text))
        _collect_comments(text, spaces, starts, comments, foreign)
        starts.pop()
    end_of_text = len(text)
    kinds.append("eof")
    starts.append(end_of_text)
    ends.append(end_of_text)
    texts.append("")
    return Tokens(kinds, starts, ends, texts, comments, foreign)


def _collect_comments(
    text: str,
    trivia: list[str],
    token_starts: list[int],
    comments: list[tuple[int, int]],
    foreign: list[tuple[int, int, str]],
) -> None:
    """Find `#` (and foreign `//`, `/* */`) comments in the trivia before each token."""
    spans = [
        (end - len(space), end)
        for space, end in zip(trivia, token_starts, strict=False)
        if "#" in space or "/" in space
    ]
    for start, end in spans:
        for match in _COMMENT_RE.finditer(text, start, end):
            value = match.group()
            if value[0] == "#":
                comments.append(match.span())
            else:
                foreign.append((match.start(), match.end(), value[:2]))
