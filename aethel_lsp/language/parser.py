"""Error-tolerant recursive-descent parser for Aethel.

Written by hand on purpose.  Upstream parses Aethel with a Lark LALR grammar, which
stops at the first unexpected token and can only say "unexpected token X, expected
one of {...}".  An editor needs more: several errors per file, each with a precise
range; a message that names what was expected and, for constructs borrowed from
other languages (`//`, `=`, `a.b`, `if`, `&&`, `let`, strings, calls, `assert`...),
says what to write in Aethel instead; and a partial tree for broken files so that
document symbols and navigation keep working while typing.  Recursive descent with
explicit synchronisation points (`;`, `}`, and the reserved keywords, which can only
start an item or a block) gives all three.

Recovery rules, in short:
- a statement that goes wrong is skipped up to its `;` (or the enclosing `}`);
- a reserved keyword always wins: `intent` closes any unfinished intent/batch, and
  `guard`/`solve`/`verify` close an unfinished block;
- a foreign construct that has an obvious Aethel reading (`=` for `==`, `let x = e`,
  `assert c`, `if (c) { ... }`) is reported once and then parsed as that reading, so
  one mistake yields one diagnostic.

Hostile input (a binary or a generated file renamed `.ae`) must not take the editor
down with it.  Nesting (parentheses, `!`, unary `-`, `if` blocks) is bounded by
`MAX_NESTING`: deeper input gets one "nested too deeply" error at the offending token
and the group is skipped, so neither this parser nor any tree walker downstream comes
near Python's recursion limit.  And only the first `MAX_DIAGNOSTICS` syntax errors (in
source order) are built into `Diagnostic`s; the rest are counted (`omitted`) and their
offsets kept (`error_offsets`, which the checker uses to skip broken intents).
"""

from __future__ import annotations

import gc
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from aethel_lsp.language.ast import (
    KNOWN_BLOCKS,
    RELOPS,
    Batch,
    BinOp,
    Block,
    Comment,
    Comparison,
    Condition,
    Expr,
    Group,
    Implication,
    Intent,
    Item,
    MissingExpr,
    Name,
    Number,
    Param,
    Program,
    Setting,
)
from aethel_lsp.language.diagnostics import Diagnostic, Fix, Severity
from aethel_lsp.language.lexer import Tokens, tokenize
from aethel_lsp.language.spans import LineIndex, Span

__all__ = [
    "MAX_DIAGNOSTICS",
    "MAX_NESTING",
    "ChunkParse",
    "ParseResult",
    "assemble",
    "gc_paused",
    "parse",
    "parse_chunk",
]

# Deepest nesting accepted.  Each level costs the parser 3 Python frames and the
# walkers (formatter, checker) up to 3 more; 100 levels keeps both well below the
# default recursion limit of 1000, and no hand-written condition comes close.
MAX_NESTING = 100
# Syntax errors materialised per parse: an editor shows a few hundred at most, and
# building tens of thousands (a garbage file) would dominate the parse.
MAX_DIAGNOSTICS = 200

_BLOCK_KEYWORDS = frozenset(KNOWN_BLOCKS)
_ITEM_KEYWORDS = frozenset({"intent", "atomic_batch", "eof"})
_PARAMS_END = frozenset({"{", "eof", "intent", "atomic_batch", "guard", "solve", "verify"})
_ADD_OPS = frozenset({"+", "-"})
_MUL_OPS = frozenset({"*", "/", "%"})
# tokens that may continue an expression after a name or number
_EXPR_CONTINUES = frozenset({"+", "-", "*", "/", "%", ".", "(", "["})
_TERM_CONTINUES = frozenset({"*", "/", "%", ".", "(", "["})
_SPECIAL_WORDS = frozenset(
    {
        "let",
        "if",
        "return",
        "not",
        *["assert", "ensure", "ensures", "require", "requires", "prove", "assume"],
    }
)
_STATEMENT_WORDS = {
    "assert": "`assert` is not Aethel: write the condition itself, e.g. `x > 0;`, in `guard`"
    " (precondition) or `verify` (postcondition)",
    "ensure": "`ensure` is not Aethel: write the condition itself, e.g. `x > 0;`, in `verify`",
    "ensures": "`ensures` is not Aethel: write the condition itself, e.g. `x > 0;`, in `verify`",
    "require": "`require` is not Aethel: write the condition itself, e.g. `x > 0;`, in `guard`",
    "requires": "`requires` is not Aethel: write the condition itself, e.g. `x > 0;`, in `guard`",
    "prove": "`prove` is not Aethel: every `verify` condition is checked; write the condition"
    " itself, e.g. `a == b + c;`, in `verify`",
    "assume": "`assume` is not Aethel: preconditions are written as conditions in `guard`",
}


_NO_ITEMS = "expected `intent` or `atomic_batch`: an Aethel file needs at least one intent"

# (start, end, message, code, fix) of one syntax error, before it becomes a Diagnostic
RawError = tuple[int, int, str, str, "tuple[str, int, int, str] | None"]


class ParseResult:
    """The (possibly partial) tree and the syntax diagnostics, in source order.

    `diagnostics` holds the first `MAX_DIAGNOSTICS` errors; `omitted` counts the rest.
    `error_offsets` (sorted) has the start of every error, shown or not.  `index`
    resolves offsets of the whole text.

    The incremental parser passes `build` instead of a program: the tree is then put
    together (copying moved chunks) on first use, in the thread that needs it, so that
    syntax diagnostics of a large file do not wait for it.
    """

    __slots__ = ("_build", "_lock", "_program", "diagnostics", "error_offsets", "index", "omitted")

    def __init__(
        self,
        program: Program | None,
        diagnostics: list[Diagnostic],
        error_offsets: list[int] | None = None,
        omitted: int = 0,
        *,
        build: Callable[[], Program] | None = None,
        index: LineIndex | None = None,
    ) -> None:
        if program is None and (build is None or index is None):
            raise ValueError("ParseResult needs a program, or a way to build one and its index")
        self._program = program
        self._build = build
        self._lock = threading.Lock() if program is None else None
        self.diagnostics = diagnostics
        self.error_offsets = [] if error_offsets is None else error_offsets
        self.omitted = omitted
        if index is None:
            assert program is not None
            index = program.index
        self.index = index

    @property
    def program(self) -> Program:
        program = self._program
        if program is None:
            assert self._lock is not None and self._build is not None
            with self._lock:
                if self._program is None:
                    with gc_paused():
                        self._program = self._build()
                    self._build = None
                program = self._program
        return program

    @property
    def ok(self) -> bool:
        return not self.error_offsets and not any(
            d.severity == Severity.ERROR for d in self.diagnostics
        )

    def __repr__(self) -> str:
        return (
            f"ParseResult(diagnostics={self.diagnostics!r}, "
            f"error_offsets={self.error_offsets!r}, omitted={self.omitted})"
        )


def parse(
    text: str, max_diagnostics: int = MAX_DIAGNOSTICS, *, tokens: Tokens | None = None
) -> ParseResult:
    """Parse Aethel source; never raises, always returns a tree.

    `tokens`, if given, is `tokenize(text)` already done (and is consumed)."""
    with gc_paused():
        index = LineIndex(text)
        if tokens is None:
            tokens = tokenize(text)
        parser = _Parser(text, tokens, index)
        program = parser.parse_program()
    return ParseResult(program, *_settle(parser.errors, index, max_diagnostics))


def _settle(
    errors: list[RawError], index: LineIndex, max_diagnostics: int
) -> tuple[list[Diagnostic], list[int], int]:
    """Sort the recorded errors (stable: ties keep their recording order) and build the
    first `max_diagnostics` of them as Diagnostics (resolving lines is the costly part,
    so it is only done for the errors that are shown); also every error's start and
    the number of errors not shown."""
    errors.sort(key=_error_order)
    shown = [_diagnostic(raw, index) for raw in errors[:max_diagnostics]]
    offsets = sorted(raw[0] for raw in errors)
    return shown, offsets, max(0, len(errors) - max_diagnostics)


def _diagnostic(raw: RawError, index: LineIndex) -> Diagnostic:
    start, end, message, code, fix = raw
    repair = None
    if fix is not None:
        title, fix_start, fix_end, new_text = fix
        repair = Fix(title, index.range(fix_start, fix_end), new_text)
    return Diagnostic(index.range(start, end), Severity.ERROR, message, code, fix=repair)


def record_foreign_comments(
    errors: list[RawError], foreign_comments: list[tuple[int, int, str]]
) -> None:
    """Report `//` and `/* */` comments after everything else, like `_Parser.error`
    (one error per position: skipped where the last recorded error starts)."""
    for start, _end, marker in foreign_comments:
        if errors and errors[-1][0] == start:
            continue
        if marker == "//":
            errors.append(
                (
                    start,
                    start + 2,
                    "`//` comments are not Aethel: start comments with `#`",
                    "foreign-comment",
                    ("Use `#` for the comment", start, start + 2, "#"),
                )
            )
        else:
            errors.append(
                (
                    start,
                    start + 2,
                    "`/* */` comments are not Aethel: start each comment line with `#`",
                    "foreign-comment",
                    None,
                )
            )


@dataclass
class ChunkParse:
    """The top-level items of one chunk of a text, parsed as the whole-text parse
    would parse them (see `parse_chunk`).  Offsets are absolute; nodes resolve lines
    through `index`, which covers this chunk only."""

    items: list[Item]
    comments: list[Comment]
    errors: list[RawError]
    foreign_comments: list[tuple[int, int, str]]
    index: LineIndex


def assemble(
    text: str,
    index: LineIndex,
    errors: list[RawError],
    foreign_comments: list[tuple[int, int, str]],
    has_items: bool,
    build: Callable[[], tuple[list[Item], list[Comment]]],
    max_diagnostics: int = MAX_DIAGNOSTICS,
) -> ParseResult:
    """The parse of `text` from the parses of its consecutive chunks (`parse_chunk`),
    equal to `parse(text)`: `errors` and `foreign_comments` are the chunks' in order,
    and the end-of-parse errors are added as `parse` adds them.  The tree is built by
    `build` (the chunks' items and comments) on first use."""
    if not has_items and not errors:
        errors.append((len(text), len(text), _NO_ITEMS, "syntax", None))
    record_foreign_comments(errors, foreign_comments)

    def program() -> Program:
        items, comments = build()
        return Program(items, comments, Span(0, len(text), index), index)

    return ParseResult(None, *_settle(errors, index, max_diagnostics), build=program, index=index)


def parse_chunk(
    text: str, start: int, end: int, sentinel: str, index: LineIndex, whole: Tokens | None = None
) -> ChunkParse | None:
    """Parse `text[start:end]`, a run of top-level items, as the whole-text parse does.

    `start` is 0 or the start of a top-level item keyword; `end` is the end of `text`
    (`sentinel` "eof") or the start of the `intent`/`atomic_batch` keyword `sentinel`
    that follows, which is lexed as it is in the whole text.  Every construct stops at
    an item keyword, so the items parse exactly as in the whole text -- unless one of
    them runs on past `end` (a batch owning the next intent, an unclosed `/*`, an
    `if` without parentheses...).  Then the answer is None: parse a longer chunk.

    `whole`, the tokens of the whole text, saves lexing chunk by chunk when most
    chunks are new (one C-level pass instead of a Python call per chunk).
    """
    with gc_paused():
        if whole is not None:
            tokens = _slice_tokens(whole, start, end, sentinel)
        else:
            tokens = _lex_chunk(text, start, end, sentinel)
        if tokens is None:
            return None
        stop = len(tokens.kinds) - 2  # index of the sentinel, followed by `eof`
        parser = _Parser(text, tokens, index)
        items: list[Item] = []
        while parser.i < stop:
            parser.parse_item(items)
        if parser.i != stop:
            return None
        comments = parser.comments()
    return ChunkParse(items, comments, parser.errors, tokens.foreign_comments, index)


def _error_order(raw: RawError) -> tuple[int, int]:
    return raw[0], raw[1]


def _lex_chunk(text: str, start: int, end: int, sentinel: str) -> Tokens | None:
    """The tokens of [start, end), then the sentinel and `eof`, or None if an unclosed
    `/*` comment runs to `end` (in the whole text it goes on)."""
    tokens = tokenize(text[start:end], start)
    if sentinel == "eof":
        stop = end
    else:
        if any(c_end == end for _s, c_end, _m in tokens.foreign_comments):
            return None
        stop = end + len(sentinel)
        tokens.kinds[-1] = tokens.texts[-1] = sentinel
        tokens.ends[-1] = stop
    tokens.kinds.append("eof")
    tokens.starts.append(stop)
    tokens.ends.append(stop)
    tokens.texts.append("")
    return tokens


def _slice_tokens(whole: Tokens, start: int, end: int, sentinel: str) -> Tokens | None:
    """The tokens of [start, end) from the whole text's, then the sentinel and `eof`
    (the same as lexing the chunk alone, as `parse_chunk` does), or None if `end` is
    not where the sentinel token starts (it is inside a comment)."""
    starts = whole.starts
    first = bisect_left(starts, start)
    last = bisect_left(starts, end)
    if starts[first] != start and start > 0:
        return None
    if whole.kinds[last] != sentinel or starts[last] != end:
        return None
    stop = end if sentinel == "eof" else end + len(sentinel)
    by_start = itemgetter(0)
    c0 = bisect_left(whole.comments, start, key=by_start)
    c1 = bisect_left(whole.comments, end, key=by_start)
    f0 = bisect_left(whole.foreign_comments, start, key=by_start)
    f1 = bisect_left(whole.foreign_comments, end, key=by_start)
    return Tokens(
        [*whole.kinds[first:last], sentinel, "eof"],
        [*starts[first:last], end, stop],
        [*whole.ends[first:last], stop, stop],
        [*whole.texts[first:last], whole.texts[last], ""],
        whole.comments[c0:c1],
        whole.foreign_comments[f0:f1],
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic GC from traversing the tree while and right after it is built.

    A parse allocates one small object per node (~50,000 on a 20,000-line file) and
    none of it is cyclic garbage: trees are freed by reference counting.  Left alone,
    the GC would traverse those objects in repeated young collections while they are
    being built (about 15% of the parse).  So collection is paused during the parse,
    and afterwards `freeze()` + `unfreeze()` move every tracked object into the oldest
    generation in O(1) and reset the young counters: the new tree is then only seen by
    the (rare) full collections.  The side effect, other young objects also aging at
    once, only delays the collection of unrelated cyclic garbage to the next full
    collection.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        gc.enable()


class _Parser:
    """One parse.  `i` indexes the token lists; every loop is guaranteed to advance."""

    def __init__(self, text: str, tokens: Tokens, index: LineIndex) -> None:
        self.text = text
        self.tokens = tokens
        self.kinds = tokens.kinds
        self.starts = tokens.starts
        self.ends = tokens.ends
        self.texts = tokens.texts
        # a second `eof` so one-token lookahead (`kinds[i + 1]`) never runs off the end
        self.kinds.append("eof")
        self.starts.append(tokens.starts[-1])
        self.ends.append(tokens.ends[-1])
        self.texts.append("")
        self.index = index
        self.i = 0
        self.errors: list[RawError] = []
        self.error_starts: list[int] = []
        self.lenient_semicolons = False
        self.depth = 0  # current nesting (parentheses, `!`, unary `-`, `if`)

    # ----------------------------------------------------------------- helpers

    def span(self, start: int, end: int) -> Span:
        return Span(start, end, self.index)

    def name_token(self, i: int) -> Name:
        return Name(self.texts[i], self.starts[i], self.ends[i], self.index)

    def tok_span(self, i: int) -> Span:
        return Span(self.starts[i], self.ends[i], self.index)

    def error(
        self,
        span: Span,
        message: str,
        code: str = "syntax",
        fix: tuple[str, int, int, str] | None = None,
    ) -> None:
        """Report once per position (a second error there is a cascade).

        `fix` = (title, start, end, new_text): replacing [start, end) repairs it.
        """
        if self.error_starts and self.error_starts[-1] == span.start:
            return
        self.error_starts.append(span.start)
        self.errors.append((span.start, span.end, message, code, fix))

    def too_deep(self, i: int) -> bool:
        """At the nesting limit, report the token at `i` (once) and skip its group.

        The caller then returns a placeholder; enclosing levels close normally."""
        if self.depth < MAX_NESTING:
            return False
        self.error(
            self.tok_span(i),
            f"expression nested too deeply (more than {MAX_NESTING} levels): "
            "split it into several conditions",
            "too-deep",
        )
        self.i = i
        while self.kinds[self.i] in ("!", "-"):
            self.i += 1
        if self.kinds[self.i] != "eof":
            self.skip_balanced()
        return True

    def describe(self, i: int) -> str:
        kind = self.kinds[i]
        if kind == "eof":
            return "end of file"
        if kind == "number":
            return f"number `{self.texts[i]}`"
        if kind == "string":
            return "a string"
        return f"`{self.texts[i]}`"

    def expected(self, what: str, i: int | None = None, code: str = "syntax") -> None:
        j = self.i if i is None else i
        self.error(self.tok_span(j), f"expected {what}, found {self.describe(j)}", code)

    def prev_end(self) -> int:
        return self.ends[self.i - 1] if self.i > 0 else 0

    def after_prev(self) -> Span:
        """Where a missing token belongs: the last character of the previous token."""
        if self.i == 0:
            return self.tok_span(0)
        return self.tok_span(self.i - 1)

    def on_new_line(self, i: int) -> bool:
        return i > 0 and "\n" in self.text[self.ends[i - 1] : self.starts[i]]

    def skip_balanced(self) -> None:
        """Skip one token, or a whole (...)/{...}/[...] group if it opens one."""
        kinds = self.kinds
        opener = kinds[self.i]
        closer = {"(": ")", "{": "}", "[": "]"}.get(opener)
        self.i += 1
        if closer is None:
            return
        depth = 1
        while kinds[self.i] != "eof":
            kind = kinds[self.i]
            if kind == opener:
                depth += 1
            elif kind == closer:
                depth -= 1
                if depth == 0:
                    self.i += 1
                    return
            elif kind in _ITEM_KEYWORDS:
                return
            self.i += 1

    def skip_statement(self) -> None:
        """Skip to just after the next `;` at this level, stopping before `}` or a keyword."""
        kinds = self.kinds
        while True:
            kind = kinds[self.i]
            if kind == ";":
                self.i += 1
                return
            if kind == "}" or kind in _ITEM_KEYWORDS or kind in _BLOCK_KEYWORDS:
                return
            self.skip_balanced()

    # ----------------------------------------------------------------- program

    def parse_program(self) -> Program:
        items: list[Item] = []
        kinds = self.kinds
        while kinds[self.i] != "eof":
            self.parse_item(items)
        if not items and not self.errors:
            self.error(self.tok_span(self.i), _NO_ITEMS)
        comments = self.comments()
        record_foreign_comments(self.errors, self.tokens.foreign_comments)
        return Program(items, comments, self.span(0, len(self.text)), self.index)

    def parse_item(self, items: list[Item]) -> None:
        """One step at the top level: an intent, a batch, or something stray."""
        kind = self.kinds[self.i]
        if kind == "intent":
            items.append(self.parse_intent(None))
        elif kind == "atomic_batch":
            items.append(self.parse_batch())
        else:
            self.parse_stray_top_level()

    def comments(self) -> list[Comment]:
        return [Comment(self.text[s:e].rstrip(), self.span(s, e)) for s, e in self.tokens.comments]

    def parse_stray_top_level(self) -> None:
        """Something other than `intent`/`atomic_batch` at the top level."""
        i = self.i
        kind = self.kinds[i]
        if kind in _BLOCK_KEYWORDS:
            # e.g. a different dialect's `solve name { let ...; assert ...; }`
            end = i + 1
            if self.kinds[end] == "ident":
                end += 1
            self.error(
                self.span(self.starts[i], self.ends[end - 1]),
                f"`{kind}` block outside an intent: blocks go inside "
                f"`intent NAME(params) {{ guard {{ ... }} solve {{ ... }} verify {{ ... }} }}`",
            )
            self.i = end
            if self.kinds[self.i] == "{":
                lenient = self.lenient_semicolons
                self.lenient_semicolons = True
                block = Block(kind, self.tok_span(i), self.tok_span(i))
                self.i += 1
                self.parse_condition_body(block, self.starts[i])
                self.lenient_semicolons = lenient
            return
        if kind == "}":
            self.error(self.tok_span(i), "unmatched `}`: there is no open `{` here")
            self.i += 1
            return
        self.expected("`intent` or `atomic_batch`")
        # skip to the next item keyword (balanced), reporting once
        while self.kinds[self.i] not in _ITEM_KEYWORDS:
            self.skip_balanced()

    def parse_batch(self) -> Batch:
        kw = self.i
        self.i += 1
        name: Name | None = None
        if self.kinds[self.i] == "ident":
            name = self.name_token(self.i)
            self.i += 1
        else:
            self.expected("a batch name after `atomic_batch`")
        intents: list[Intent] = []
        if self.kinds[self.i] != "{":
            self.expected(f"`{{` to open atomic_batch `{name.name if name else ''}`")
            return Batch(
                name, intents, self.span(self.starts[kw], self.prev_end()), self.tok_span(kw)
            )
        brace = self.i
        self.i += 1
        batch_name = name.name if name else None
        while True:
            kind = self.kinds[self.i]
            if kind == "}":
                self.i += 1
                break
            if kind == "intent":
                intents.append(self.parse_intent(batch_name))
                continue
            if kind in ("eof", "atomic_batch"):
                self.error(
                    self.tok_span(brace),
                    f"`{{` of atomic_batch `{batch_name}` is never closed: expected `}}` "
                    f"before {self.describe(self.i)}",
                )
                break
            self.expected("`intent` or `}` inside atomic_batch")
            while self.kinds[self.i] not in _ITEM_KEYWORDS and self.kinds[self.i] != "}":
                self.skip_balanced()
        return Batch(name, intents, self.span(self.starts[kw], self.prev_end()), self.tok_span(kw))

    # ----------------------------------------------------------------- intent

    def parse_intent(self, batch: str | None) -> Intent:
        kw = self.i
        self.i += 1
        kinds = self.kinds
        name: Name | None = None
        if kinds[self.i] == "ident":
            name = self.name_token(self.i)
            self.i += 1
        else:
            self.expected("an intent name after `intent`")
            if kinds[self.i] not in ("(", "{") and kinds[self.i] not in _ITEM_KEYWORDS:
                self.i += 1
        params: list[Param] = []
        if kinds[self.i] == "(":
            self.i += 1
            params = self.parse_params()
        else:
            self.expected("`(` and a parameter list after the intent name (write `()` if empty)")
        blocks: list[Block] = []
        intent = Intent(name, params, blocks, self.tok_span(kw), self.tok_span(kw), batch)
        if kinds[self.i] != "{":
            if kinds[self.i] != "eof":
                self.expected("`{` to open the intent body")
            if kinds[self.i] not in _BLOCK_KEYWORDS:
                intent.span = self.span(self.starts[kw], self.prev_end())
                return intent
            brace = self.i
        else:
            brace = self.i
            self.i += 1
        label = f"intent `{name.name}`" if name else "the intent"
        closed = False
        while True:
            kind = kinds[self.i]
            if kind == "}":
                self.i += 1
                closed = True
                break
            if kind in _BLOCK_KEYWORDS:
                blocks.append(self.parse_block(kind))
                continue
            if kind in _ITEM_KEYWORDS:
                self.error(
                    self.tok_span(brace),
                    f"`{{` of {label} is never closed: "
                    f"expected `}}` before {self.describe(self.i)}",
                )
                break
            if kind == "ident" and kinds[self.i + 1] == "{":
                # an unknown block: parsed like guard/verify; the checker reports it
                blocks.append(self.parse_block(self.texts[self.i]))
                continue
            self.expected("a `guard`, `solve` or `verify` block")
            self.skip_statement()
            if kinds[self.i] == "}" and self.kinds[self.i + 1] in _BLOCK_KEYWORDS:
                self.i += 1  # a stray `}` between blocks
        intent.span = self.span(self.starts[kw], self.prev_end())
        self.check_block_order(intent, label, report_missing=closed)
        return intent

    def check_block_order(self, intent: Intent, label: str, report_missing: bool) -> None:
        """All three known blocks must be present, once each, in guard/solve/verify order."""
        seen: dict[str, Block] = {}
        last_rank = -1
        for block in intent.blocks:
            if not block.is_known:
                continue
            if block.kind in seen:
                self.error(
                    block.keyword_span,
                    f"{label} has a second `{block.kind}` block: merge it into the first one",
                )
                continue
            rank = KNOWN_BLOCKS.index(block.kind)
            if rank < last_rank:
                self.error(
                    block.keyword_span,
                    f"`{block.kind}` block out of order: write the blocks as "
                    "`guard`, then `solve`, then `verify`",
                )
            last_rank = max(last_rank, rank)
            seen[block.kind] = block
        missing = [kind for kind in KNOWN_BLOCKS if kind not in seen]
        if missing and report_missing:
            where = intent.name.span if intent.name else intent.keyword_span
            names = ", ".join(f"`{kind}`" for kind in missing)
            hint = ""
            if "verify" in missing and "solve" in seen and seen["solve"].conditions:
                hint = " (postconditions written in `solve` belong in `verify`)"
            self.error(
                where,
                f"{label} has no {names} block: every intent needs "
                f"`guard {{ ... }}`, `solve {{ ... }}` and `verify {{ ... }}`, in this order{hint}",
            )

    def parse_params(self) -> list[Param]:
        """After `(`: params separated by `,`, up to and including `)`."""
        params: list[Param] = []
        kinds = self.kinds
        while True:
            kind = kinds[self.i]
            if kind == ")":
                self.i += 1
                return params
            if kind in _PARAMS_END:
                self.expected("`)` to close the parameter list")
                return params
            param = self.parse_param()
            if param is not None:
                params.append(param)
            kind = kinds[self.i]
            if kind == ",":
                self.i += 1
                if kinds[self.i] == ")":
                    comma = self.i - 1
                    self.error(
                        self.tok_span(comma),
                        "trailing `,` before `)`: remove it",
                        fix=("Remove the `,`", self.starts[comma], self.ends[comma], ""),
                    )
            elif kind != ")" and kind not in _PARAMS_END:
                if param is not None and kinds[self.i] == "ident":
                    self.error(self.after_prev(), "expected `,` between parameters")
                    continue
                self.expected("`,` or `)` after the parameter")
                while kinds[self.i] not in (",", ")", "{", "eof", "intent", "atomic_batch"):
                    self.skip_balanced()
                if kinds[self.i] == ",":
                    self.i += 1

    def parse_param(self) -> Param | None:
        kinds = self.kinds
        start = self.i
        secret = external = False
        if kinds[self.i] == "secret":
            secret = True
            self.i += 1
        if kinds[self.i] == "external":
            external = True
            self.i += 1
        if kinds[self.i] != "ident":
            self.expected("a parameter `name: Type`")
            return None
        name = self.name_token(self.i)
        self.i += 1
        type_name: Name | None = None
        if kinds[self.i] == ":":
            self.i += 1
            if kinds[self.i] == "ident":
                type_name = self.name_token(self.i)
                self.i += 1
            else:
                self.expected(f"a type after `{name.name}:` (e.g. `{name.name}: Balance`)")
        else:
            self.error(
                name.span,
                f"expected `:` and a type after parameter `{name.name}` "
                f"(e.g. `{name.name}: Balance`), found {self.describe(self.i)}",
            )
        return Param(
            name, type_name, self.starts[start], self.prev_end(), self.index, secret, external
        )

    # ----------------------------------------------------------------- blocks

    def parse_block(self, kind: str) -> Block:
        kw = self.i
        self.i += 1
        block = Block(kind, self.tok_span(kw), self.tok_span(kw))
        if self.kinds[self.i] != "{":
            if self.kinds[self.i] == "ident" and self.kinds[self.i + 1] == "{":
                self.error(
                    self.tok_span(self.i),
                    f"blocks have no names: write `{kind} {{`, "
                    f"not `{kind} {self.texts[self.i]} {{`",
                )
                self.i += 1
            else:
                self.expected(f"`{{` after `{kind}`")
                block.closed = False
                block.span = self.span(self.starts[kw], self.prev_end())
                return block
        self.i += 1
        if kind == "solve":
            self.parse_solve_body(block, self.starts[kw])
        else:
            self.parse_condition_body(block, self.starts[kw])
        return block

    def block_unclosed(self, block: Block, start: int) -> None:
        block.closed = False
        self.error(
            block.keyword_span,
            f"`{block.kind}` block is never closed: expected `}}` before {self.describe(self.i)}",
        )
        block.span = self.span(start, self.prev_end())

    def parse_condition_body(self, block: Block, start: int) -> None:
        kinds = self.kinds
        conditions = block.conditions
        while True:
            kind = kinds[self.i]
            if (kind == "ident" or kind == "number") and self.simple_condition(conditions):
                continue
            if kind == "}":
                self.i += 1
                block.span = self.span(start, self.prev_end())
                return
            if kind in _ITEM_KEYWORDS or kind in _BLOCK_KEYWORDS:
                self.block_unclosed(block, start)
                return
            before = self.i
            self.parse_statement(block.conditions, block.kind)
            if self.i == before:  # guarantee progress
                self.skip_balanced()

    def simple_condition(self, out: list[Condition]) -> bool:
        """Fast path for the two commonest shapes, `a op b;` and `a op b +/- c;`, where
        a, b, c are names or numbers.  Builds exactly what the general path would."""
        kinds = self.kinds
        i = self.i
        op = kinds[i + 1]
        if op not in RELOPS:
            return False
        k2 = kinds[i + 2]
        if k2 != "ident" and k2 != "number":
            return False
        k3 = kinds[i + 3]
        if k3 == ";":
            last = i + 2
        elif (k3 == "+" or k3 == "-") and kinds[i + 5] == ";":
            k4 = kinds[i + 4]
            if k4 != "ident" and k4 != "number":
                return False
            last = i + 4
        else:
            return False
        texts, starts, ends, index = self.texts, self.starts, self.ends, self.index
        if kinds[i] == "ident" and texts[i] in _SPECIAL_WORDS:
            return False
        left: Expr = (Name if kinds[i] == "ident" else Number)(texts[i], starts[i], ends[i], index)
        right: Expr = (Name if k2 == "ident" else Number)(
            texts[i + 2], starts[i + 2], ends[i + 2], index
        )
        if last != i + 2:
            extra = (Name if kinds[i + 4] == "ident" else Number)(
                texts[i + 4], starts[i + 4], ends[i + 4], index
            )
            right = BinOp(k3, right, extra, starts[i + 2], ends[i + 4], index)
        start, end = starts[i], ends[last]
        out.append(Condition(Comparison(left, op, right, start, end, index), start, end, index))
        self.i = last + 2
        return True

    def parse_solve_body(self, block: Block, start: int) -> None:
        kinds = self.kinds
        while True:
            kind = kinds[self.i]
            if kind == "}":
                self.i += 1
                block.span = self.span(start, self.prev_end())
                return
            if kind in _ITEM_KEYWORDS or kind in _BLOCK_KEYWORDS:
                self.block_unclosed(block, start)
                return
            before = self.i
            if kind == "ident" and kinds[self.i + 1] == ":":
                block.settings.append(self.parse_setting())
            elif kind == "ident" and kinds[self.i + 1] == "ident":
                key, value = self.texts[self.i], self.texts[self.i + 1]
                self.error(
                    self.span(self.starts[self.i], self.ends[self.i + 1]),
                    f"expected `:` between the setting name and its value: `{key}: {value};`",
                    fix=("Insert `:`", self.ends[self.i], self.ends[self.i], ":"),
                )
                block.settings.append(self.parse_setting(has_colon=False))
            else:
                sink: list[Condition] = []
                n = len(self.errors)
                self.parse_statement(sink, "solve")
                if sink and len(self.errors) == n:
                    first, last = sink[0].span, sink[-1].span
                    self.error(
                        first.cover(last),
                        "conditions are not allowed in `solve`, which holds hints like "
                        "`priority: security;`: move this condition to `verify` "
                        "(postcondition) or `guard` (precondition)",
                        "condition-in-solve",
                    )
                block.conditions.extend(sink)
            if self.i == before:
                self.skip_balanced()

    def parse_setting(self, has_colon: bool = True) -> Setting:
        key = self.name_token(self.i)
        self.i += 2 if has_colon else 1  # name and ':'
        value: Name | None = None
        if self.kinds[self.i] == "ident":
            value = self.name_token(self.i)
            self.i += 1
        else:
            self.expected(f"a name after `{key.name}:` (e.g. `{key.name}: security`)")
            if self.kinds[self.i] not in (";", "}"):
                self.skip_statement()
                return Setting(key, None, key.start, self.prev_end(), self.index)
        setting = Setting(key, value, key.start, self.prev_end(), self.index)
        self.expect_semicolon("setting")
        return setting

    def expect_semicolon(self, what: str) -> None:
        kind = self.kinds[self.i]
        if kind == ";":
            self.i += 1
            return
        if self.lenient_semicolons and self.on_new_line(self.i):
            return
        end = self.prev_end()
        self.error(
            self.after_prev(),
            f"expected `;` after the {what}, found {self.describe(self.i)}",
            fix=("Insert `;`", end, end, ";"),
        )
        if kind != "}":
            self.skip_statement()

    # ----------------------------------------------------------------- statements

    def parse_statement(self, out: list[Condition], block_kind: str) -> None:
        """One condition ending in `;`, recognising common foreign statement forms."""
        kinds = self.kinds
        texts = self.texts
        i = self.i
        kind = kinds[i]
        if kind == "ident" and texts[i] in _SPECIAL_WORDS:
            word = texts[i]
            nxt = kinds[i + 1]
            if word == "let" and nxt == "ident":
                self.error(
                    self.tok_span(i),
                    "`let` is not Aethel: there are no variables; state the value as a "
                    f"condition, e.g. `{texts[i + 1]} == ...;` in `guard`",
                    "foreign-let",
                )
                self.i += 1
                self.parse_condition_statement(out, assignment_ok=True)
                return
            if word == "if" and nxt in ("(", "ident", "number"):
                self.parse_if(out, block_kind)
                return
            if word == "return" and nxt not in RELOPS:
                self.error(
                    self.tok_span(i),
                    "`return` is not Aethel: an intent returns nothing; state results as "
                    "conditions in `verify`",
                    "foreign-return",
                )
                self.i += 1
                if kinds[self.i] == "{":
                    self.skip_balanced()
                    if kinds[self.i] == ";":
                        self.i += 1
                else:
                    self.skip_statement()
                return
            message = _STATEMENT_WORDS.get(word)
            if message is not None and nxt in ("ident", "number", "(", "-"):
                fix = (f"Remove `{word}`", self.starts[i], self.starts[i + 1], "")
                self.error(self.tok_span(i), message, "foreign-statement", fix)
                self.i += 1
                self.parse_condition_statement(out)
                return
            if word == "not" and nxt in ("ident", "number", "("):
                self.error(
                    self.tok_span(i),
                    "`not` is not Aethel: negate the comparison instead "
                    "(e.g. `a < b` rather than `not a >= b`)",
                    "foreign-not",
                )
                self.i += 1
        elif kind == "!":
            self.error(
                self.tok_span(i),
                "`!` is not Aethel: negate the comparison instead "
                "(e.g. `a < b` rather than `!(a >= b)`; `!=` is fine)",
                "foreign-not",
            )
            self.i += 1
        self.parse_condition_statement(out)

    def parse_if(self, out: list[Condition], block_kind: str) -> None:
        """`if (c) { ... }`: report once, then keep the inner conditions in the tree."""
        start = self.i
        self.i += 1
        if self.kinds[self.i] == "(":
            self.skip_balanced()
        else:
            while self.kinds[self.i] not in ("{", ";", "}", "eof"):
                self.i += 1
        if self.depth >= MAX_NESTING:
            self.too_deep(start)  # skips `if` and its condition...
            if self.kinds[self.i] == "(":
                self.skip_balanced()
            if self.kinds[self.i] == "{":  # ...and its body
                self.skip_balanced()
            return
        self.error(
            self.span(self.starts[start], self.prev_end()),
            "`if` is not Aethel: conditions cannot be conditional; write an implication "
            "`(a < b) ==> (c == d);` or split the cases into separate intents",
            "foreign-if",
        )
        if self.kinds[self.i] == "{":
            self.i += 1
            self.depth += 1
            while (
                self.kinds[self.i] not in ("}", "eof") and self.kinds[self.i] not in _ITEM_KEYWORDS
            ):
                before = self.i
                self.parse_statement(out, block_kind)
                if self.i == before:
                    self.skip_balanced()
            self.depth -= 1
            if self.kinds[self.i] == "}":
                self.i += 1
            if self.kinds[self.i] == "ident" and self.texts[self.i] == "else":
                self.i += 1
                if self.kinds[self.i] == "{":
                    self.skip_balanced()
        elif self.kinds[self.i] == ";":
            self.i += 1

    def parse_condition_statement(self, out: list[Condition], assignment_ok: bool = False) -> None:
        """One condition and its `;`; `a && b && ...` is reported and read as several
        conditions (a loop, not recursion: a long chain must not exhaust the stack)."""
        kinds = self.kinds
        while True:
            start = self.starts[self.i]
            secret = external = False
            if kinds[self.i] == "secret":
                secret = True
                self.i += 1
            if kinds[self.i] == "external":
                external = True
                self.i += 1
            n_before = len(self.errors)
            body = self.parse_condition_body_expr(assignment_ok)
            out.append(Condition(body, start, self.ends[self.i - 1], self.index, secret, external))
            kind = kinds[self.i]
            if kind == ";":  # the common case
                self.i += 1
                return
            if kind in ("&&", "||") or (kind == "ident" and self.texts[self.i] in ("and", "or")):
                self.foreign_connective()
                assignment_ok = False
                continue
            if len(self.errors) > n_before and kind not in (";", "}"):
                self.skip_statement()  # already reported; don't pile up a `;` error
                return
            self.expect_semicolon("condition")
            return

    def foreign_connective(self) -> None:
        """Report the `&&`/`||`/`and`/`or` at the cursor and step over it."""
        op = self.texts[self.i]
        if op in ("&&", "and"):
            message = (
                f"`{op}` is not Aethel: write each condition on its own, ending in `;` "
                "(all conditions of a block must hold)"
            )
        else:
            message = (
                f"`{op}` is not Aethel: there is no disjunction; split the cases into "
                "separate intents, or use an implication `(a > b) ==> (c > d);`"
            )
        fix = None
        if op in ("&&", "and"):
            fix = ("Split into two conditions", self.starts[self.i], self.ends[self.i], ";")
        self.error(self.tok_span(self.i), message, "foreign-logic", fix)
        self.i += 1

    def parse_condition_body_expr(self, assignment_ok: bool) -> Comparison | Implication:
        if self.kinds[self.i] == "(" and self.paren_holds_comparison():
            first = self.parse_paren_comparison()
            if self.kinds[self.i] == "==>":
                self.i += 1
                if self.kinds[self.i] == "(" and self.paren_holds_comparison():
                    second = self.parse_paren_comparison()
                else:
                    second = self.parse_comparison(assignment_ok=False)
                    self.error(
                        second.span,
                        "wrap the right side of `==>` in parentheses: `(a > b) ==> (c > d)`",
                    )
                return Implication(first, second, first.span.cover(second.span))
            self.error(
                first.span,
                "parentheses around a whole condition are only used with `==>`: "
                "remove them, or add `==> (...)`",
            )
            return first
        comp = self.parse_comparison(assignment_ok)
        if self.kinds[self.i] == "==>":
            self.error(
                comp.span,
                "wrap the left side of `==>` in parentheses: `(a > b) ==> (c > d)`",
            )
            self.i += 1
            if self.kinds[self.i] == "(" and self.paren_holds_comparison():
                second = self.parse_paren_comparison()
            else:
                second = self.parse_comparison(assignment_ok=False)
            return Implication(comp, second, comp.span.cover(second.span))
        return comp

    def paren_holds_comparison(self) -> bool:
        """Does the `(` group at the cursor contain a comparison at its own depth?"""
        kinds = self.kinds
        j = self.i + 1
        depth = 1
        while True:
            kind = kinds[j]
            if kind == "(":
                depth += 1
            elif kind == ")":
                depth -= 1
                if depth == 0:
                    return False
            elif depth == 1 and (kind in RELOPS or kind == "="):
                return True
            elif kind in (";", "{", "}", "eof") or kind in _ITEM_KEYWORDS:
                return False
            j += 1

    def parse_paren_comparison(self) -> Comparison:
        open_i = self.i
        self.i += 1
        comp = self.parse_comparison(assignment_ok=False)
        if self.kinds[self.i] == ")":
            self.i += 1
        else:
            self.expected("`)` to close the parenthesised comparison")
        comp.start, comp.end = self.starts[open_i], self.prev_end()
        comp.parenthesized = True
        return comp

    def parse_comparison(self, assignment_ok: bool) -> Comparison:
        start = self.starts[self.i]
        left = self.parse_expr()
        kinds = self.kinds
        kind = kinds[self.i]
        if kind in RELOPS:
            op = kind
            self.i += 1
        elif kind == "=":
            if not assignment_ok:
                self.error(
                    self.tok_span(self.i),
                    "`=` is assignment, which Aethel does not have: compare with `==` "
                    "(conditions state facts; they do not assign)",
                    "foreign-assign",
                    fix=("Replace `=` with `==`", self.starts[self.i], self.ends[self.i], "=="),
                )
            op = "=="
            self.i += 1
        elif kind in ("=>", "=<"):
            fixed = ">=" if kind == "=>" else "<="
            self.error(
                self.tok_span(self.i),
                f"`{kind}` is not an operator: write `{fixed}`",
                fix=(f"Replace with `{fixed}`", self.starts[self.i], self.ends[self.i], fixed),
            )
            op = fixed
            self.i += 1
        else:
            connective = kind in ("&&", "||") or (
                kind == "ident" and self.texts[self.i] in ("and", "or")
            )
            if not isinstance(left, MissingExpr) and not connective:
                self.expected(
                    "a comparison operator (`==`, `!=`, `<`, `<=`, `>`, `>=`): every "
                    "condition compares two expressions"
                )
            missing = MissingExpr(self.span(self.prev_end(), self.prev_end()))
            return Comparison(left, "==", missing, start, self.prev_end(), self.index)
        right = self.parse_expr()
        if kinds[self.i] in RELOPS:
            self.error(
                self.tok_span(self.i),
                "a condition has exactly one comparison: split `a < b < c` into "
                "`a < b;` and `b < c;`",
            )
            self.i += 1
            self.parse_expr()
        return Comparison(left, op, right, start, self.ends[self.i - 1], self.index)

    # ----------------------------------------------------------------- expressions

    def parse_expr(self) -> Expr:
        kinds = self.kinds
        i = self.i
        kind = kinds[i]
        if kinds[i + 1] not in _EXPR_CONTINUES:  # fast path: a lone name or number
            if kind == "ident":
                self.i = i + 1
                return Name(self.texts[i], self.starts[i], self.ends[i], self.index)
            if kind == "number":
                self.i = i + 1
                return Number(self.texts[i], self.starts[i], self.ends[i], self.index)
        left = self.parse_term()
        while kinds[self.i] in _ADD_OPS:
            op = kinds[self.i]
            self.i += 1
            right = self.parse_term()
            left = BinOp(op, left, right, left.start, right.end, self.index)
        return left

    def parse_term(self) -> Expr:
        kinds = self.kinds
        i = self.i
        kind = kinds[i]
        if kinds[i + 1] not in _TERM_CONTINUES:  # fast path: a lone name or number
            if kind == "ident":
                self.i = i + 1
                return Name(self.texts[i], self.starts[i], self.ends[i], self.index)
            if kind == "number":
                self.i = i + 1
                return Number(self.texts[i], self.starts[i], self.ends[i], self.index)
        left = self.parse_factor()
        while kinds[self.i] in _MUL_OPS:
            op = kinds[self.i]
            self.i += 1
            right = self.parse_factor()
            left = BinOp(op, left, right, left.start, right.end, self.index)
        return left

    def parse_factor(self) -> Expr:
        i = self.i
        kind = self.kinds[i]
        if kind == "ident":
            self.i = i + 1
            nxt = self.kinds[i + 1]
            if nxt == "." or nxt == "(" or nxt == "[":
                return self.parse_foreign_postfix(i)
            return Name(self.texts[i], self.starts[i], self.ends[i], self.index)
        if kind == "number":
            self.i = i + 1
            return Number(self.texts[i], self.starts[i], self.ends[i], self.index)
        if kind == "(":
            if self.depth >= MAX_NESTING and self.too_deep(i):
                return MissingExpr(self.span(self.starts[i], self.prev_end()))
            self.i = i + 1
            self.depth += 1
            inner = self.parse_expr()
            self.depth -= 1
            if self.kinds[self.i] == ")":
                self.i += 1
            else:
                self.expected("`)` to close `(`")
            return Group(inner, self.span(self.starts[i], self.prev_end()))
        if kind == "-" and self.kinds[i + 1] == "number" and self.ends[i] == self.starts[i + 1]:
            self.i = i + 2
            return Number("-" + self.texts[i + 1], self.starts[i], self.ends[i + 1], self.index)
        if kind == "-":
            if self.depth >= MAX_NESTING and self.too_deep(i):
                return MissingExpr(self.span(self.starts[i], self.prev_end()))
            self.error(
                self.tok_span(i),
                "unary `-` only applies to number literals: write `0 - x` instead of `-x`",
            )
            self.i = i + 1
            self.depth += 1
            operand = self.parse_factor()
            self.depth -= 1
            zero = Number("0", self.starts[i], self.starts[i], self.index)
            return BinOp("-", zero, operand, self.starts[i], operand.end, self.index)
        if kind == "string":
            self.i = i + 1
            self.error(
                self.tok_span(i),
                "strings are not Aethel: every value is a number; use a name such as "
                "`status_done` or a number code",
                "foreign-string",
            )
            return self.name_token(i)
        if kind == "!":
            if self.depth >= MAX_NESTING and self.too_deep(i):
                return MissingExpr(self.span(self.starts[i], self.prev_end()))
            self.error(
                self.tok_span(i),
                "`!` is not Aethel: negate the comparison instead (`a < b` rather than "
                "`!(a >= b)`)",
                "foreign-not",
            )
            self.i = i + 1
            self.depth += 1
            operand = self.parse_factor()
            self.depth -= 1
            return operand
        if kind == "bad":
            self.i = i + 1
            self.error(self.tok_span(i), f"unexpected character `{self.texts[i]}`")
            return MissingExpr(self.tok_span(i))
        self.expected("a name, a number or `(`")
        return MissingExpr(self.span(self.starts[i], self.starts[i]))

    def parse_foreign_postfix(self, i: int) -> Expr:
        """`a.b`, `f(x)`, `a[i]` after the identifier at `i` (cursor is past it)."""
        kinds = self.kinds
        if kinds[self.i] == ".":
            parts = [self.texts[i]]
            while kinds[self.i] == "." and kinds[self.i + 1] == "ident":
                parts.append(self.texts[self.i + 1])
                self.i += 2
            span = self.span(self.starts[i], self.prev_end())
            if kinds[self.i] == ".":
                self.i += 1
                self.expected("a name after `.`")
            dotted = ".".join(parts)
            flat = "_".join(parts)
            self.error(
                span,
                f"member access `{dotted}` is not Aethel: use one flat name such as `{flat}`",
                "foreign-member",
                fix=(f"Use `{flat}`", span.start, span.end, flat),
            )
            return Name(dotted, span.start, span.end, self.index)
        opener = kinds[self.i]
        self.skip_balanced()
        span = self.span(self.starts[i], self.prev_end())
        if opener == "(":
            message = (
                f"function calls are not Aethel: `{self.texts[i]}(...)` cannot be evaluated; "
                "name the value (e.g. `"
                + self.texts[i]
                + "_result`) and constrain it with conditions"
            )
            code = "foreign-call"
        else:
            message = f"indexing `{self.texts[i]}[...]` is not Aethel: use one flat name per value"
            code = "foreign-index"
        self.error(span, message, code)
        return Name(self.text[span.start : span.end], span.start, span.end, self.index)
