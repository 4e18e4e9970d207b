"""Incremental parsing: re-parse only the top-level items whose text changed.

Why: a full parse of a 20,000-line file costs ~150 ms of CPU (lexing is half of it),
the whole budget for "a keystroke -> diagnostics" (issue 6).  An edit touches one
intent; the other 1,000 parse exactly as before.

How: a cheap scan cuts the text into chunks at lines that start with `intent` or
`atomic_batch` (column 0; about one in `GROUP` of them, chosen by content).  Each
chunk is parsed on its own by `parse_chunk`, which lexes the keyword that follows it
as it is in the whole text and refuses (None) when an item runs on past the chunk (a
batch owning the next intent, an unclosed `/*`...); such a chunk is merged with the
next ones (doubling, so a long batch costs O(n)); when that reaches past half the
text (a file that is mostly one batch with column-0 intents), the text is parsed whole,
as it would be without this module.
Chunk parses are cached by (chunk text, following keyword) for the next version of
the document: a chunk found at the same offset and line is reused as is (its nodes
resolve lines through the chunk's own `LineIndex.region`); one that moved keeps its
parse and only its errors are shifted at once.  The tree is put together when a
feature first asks for it (`ParseResult.program`), copying the moved chunks with
shifted offsets, a fraction of the cost of parsing them; syntax diagnostics do not
wait for it.  `assemble` builds exactly what `parse` would (tests compare both on
random edits).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from typing import Final
from zlib import crc32

from aethel_lsp.language.ast import (
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
    Setting,
    left_spine,
)
from aethel_lsp.language.lexer import tokenize
from aethel_lsp.language.parser import (
    MAX_DIAGNOSTICS,
    ChunkParse,
    ParseResult,
    RawError,
    assemble,
    gc_paused,
    parse,
    parse_chunk,
)
from aethel_lsp.language.spans import LineIndex, Span

__all__ = ["GROUP", "IncrementalParser", "chunk_bounds"]

# a newline followed by an item keyword (not an identifier that starts like one)
_BOUNDARY: Final = re.compile(r"\n(?=(?:intent|atomic_batch)(?![A-Za-z0-9_]))")
GROUP: Final = 8  # item keywords per chunk, on average
# a chunk that runs on past its end (`parse_chunk` said None)
_RUNS_ON: Final = object()


def chunk_bounds(text: str, group: int = GROUP) -> list[int]:
    """0, the start of some column-0 `intent`/`atomic_batch` keywords, len(text).

    About one item keyword in `group` starts a chunk: the one whose line hashes to 0
    modulo `group`.  Chunks of several items cost less per item to parse and to look
    up (a first parse of 1,000 one-item chunks is ~20% slower than a whole parse),
    and since the choice depends only on the keyword's own line, an edit elsewhere
    does not move the other chunks' bounds.
    """
    bounds = [0]
    for match in _BOUNDARY.finditer(text):
        at = match.end()
        eol = text.find("\n", at)
        line = text[at : eol if eol >= 0 else len(text)]
        if group == 1 or crc32(line.encode("utf-8", "surrogatepass")) % group == 0:
            bounds.append(at)
    bounds.append(len(text))
    return bounds


class _Cached:
    """A chunk parse and where it was made (its nodes' offsets and lines)."""

    __slots__ = ("chunk", "line", "start")

    def __init__(self, chunk: ChunkParse, start: int, line: int) -> None:
        self.chunk = chunk
        self.start = start
        self.line = line


class IncrementalParser:
    """Parses successive versions of one document, reusing unchanged chunks.

    Keeps the chunk parses of the last version only (memory stays one tree).  Thread
    safe: one parse at a time.
    """

    def __init__(self, group: int = GROUP) -> None:
        self.group = group
        self._chunks: dict[tuple[str, str], _Cached | object] = {}
        self._lock = threading.Lock()
        self.reparsed = 0  # chunks parsed by the last call (for tests and the bench)

    def parse(self, text: str, max_diagnostics: int = MAX_DIAGNOSTICS) -> ParseResult:
        """Equal to `parser.parse(text)`, reusing the previous call's work."""
        with self._lock:
            bounds = chunk_bounds(text, self.group)
            if len(bounds) <= 2:  # one chunk: nothing to reuse
                self._chunks = {}
                self.reparsed = 1
                return parse(text, max_diagnostics)
            with gc_paused():
                return self._parse_chunks(text, bounds, max_diagnostics)

    def _parse_chunks(self, text: str, bounds: list[int], max_diagnostics: int) -> ParseResult:
        index = LineIndex(text)
        line_starts = index.line_starts
        old = self._chunks
        # nothing to reuse (a document just opened): lex the whole text in one pass
        whole = None if old else tokenize(text)
        new: dict[tuple[str, str], _Cached | object] = {}
        # per chunk: its parse, and for one that moved, (key, delta, its new index)
        placed: list[tuple[ChunkParse, tuple[tuple[str, str], int, LineIndex] | None]] = []
        errors: list[RawError] = []
        foreign: list[tuple[int, int, str]] = []
        has_items = False
        reparsed = 0
        k = 0
        last = len(bounds) - 1
        while k < last:
            start = bounds[k]
            line = bisect_left(line_starts, start)  # `start` is a line start
            j = k + 1
            while True:
                end = bounds[j]
                if j == last:
                    sentinel = "eof"
                elif text.startswith("intent", end):
                    sentinel = "intent"
                else:
                    sentinel = "atomic_batch"
                key = (text[start:end], sentinel)
                cached = new.get(key) or old.get(key)
                if cached is None and j > k + 1 and 2 * (end - start) > len(text):
                    # items that run on over half the text (a large batch whose
                    # intents start in column 0): one whole parse costs less than
                    # more attempts; the attempts so far stay cached
                    self._chunks = new
                    self.reparsed = reparsed
                    return parse(text, max_diagnostics, tokens=whole)
                if cached is None:
                    region = _region(index, line, end, sentinel)
                    parsed = parse_chunk(text, start, end, sentinel, region, whole)
                    reparsed += 1
                    cached = _RUNS_ON if parsed is None else _Cached(parsed, start, line)
                new[key] = cached
                if isinstance(cached, _Cached):
                    break
                j = min(k + 2 * (j - k), last)  # runs on: try a longer chunk
            chunk = cached.chunk
            delta = start - cached.start
            chunk_errors = chunk.errors
            if delta:
                chunk_errors = _shift_errors(chunk_errors, delta)
            if chunk_errors:
                if errors and chunk_errors[0][0] == errors[-1][0]:
                    # the whole parse would have dropped this error as a repeat at
                    # the same position, which may change what follows: parse whole
                    return parse(text, max_diagnostics, tokens=whole)
                errors += chunk_errors
            if chunk.foreign_comments:
                foreign += [(s + delta, e + delta, m) for s, e, m in chunk.foreign_comments]
            has_items = has_items or bool(chunk.items)
            if delta or cached.line != line:
                placed.append((chunk, (key, delta, _region(index, line, end, sentinel))))
            else:
                placed.append((chunk, None))
            k = j
        self._chunks = new
        self.reparsed = reparsed

        def build() -> tuple[list[Item], list[Comment]]:
            items: list[Item] = []
            comments: list[Comment] = []
            moved: dict[tuple[str, str], _Cached] = {}
            for chunk, move in placed:
                if move is not None:
                    key, delta, region = move
                    chunk = _shift(chunk, delta, region)
                    moved[key] = _Cached(chunk, region.line_starts[0], region.first_line)
                items += chunk.items
                comments += chunk.comments
            self._remember(new, moved)
            return items, comments

        return assemble(text, index, errors, foreign, has_items, build, max_diagnostics)

    def _remember(
        self, chunks: dict[tuple[str, str], _Cached | object], moved: dict[tuple[str, str], _Cached]
    ) -> None:
        """Keep the copies made for the tree: the next version finds those chunks in
        place.  Only if `chunks` is still the latest version's (and without waiting
        for a parse in progress)."""
        if not moved or not self._lock.acquire(blocking=False):
            return
        try:
            if self._chunks is chunks:
                chunks.update(moved)
        finally:
            self._lock.release()


def _region(index: LineIndex, first_line: int, end: int, sentinel: str) -> LineIndex:
    """The line index of a chunk starting on `first_line` and ending at `end`, including
    the line of the keyword after it (errors may point at it)."""
    starts = index.line_starts
    last_line = bisect_left(starts, end)  # `end` is a line start (or the end of text)
    return LineIndex.region(
        starts[first_line : last_line + 1], first_line, end + len(sentinel) * (sentinel != "eof")
    )


def _shift(chunk: ChunkParse, delta: int, index: LineIndex) -> ChunkParse:
    """A copy of `chunk` moved by `delta` characters, resolving lines through `index`."""
    return ChunkParse(
        _Shifter(delta, index).items(chunk.items),
        [
            Comment(c.text, Span(c.span.start + delta, c.span.end + delta, index))
            for c in chunk.comments
        ],
        _shift_errors(chunk.errors, delta),
        [(s + delta, e + delta, marker) for s, e, marker in chunk.foreign_comments],
        index,
    )


def _shift_errors(errors: list[RawError], delta: int) -> list[RawError]:
    return [
        (
            s + delta,
            e + delta,
            message,
            code,
            None if fix is None else (fix[0], fix[1] + delta, fix[2] + delta, fix[3]),
        )
        for s, e, message, code, fix in errors
    ]


class _Shifter:
    """Copies nodes with offsets moved by `delta` and lines resolved by `index`.

    Written out per node type (no reflection): this is the hot path of an edit near
    the top of a large file."""

    __slots__ = ("delta", "index")

    def __init__(self, delta: int, index: LineIndex) -> None:
        self.delta = delta
        self.index = index

    def span(self, span: Span) -> Span:
        return Span(span.start + self.delta, span.end + self.delta, self.index)

    def name(self, name: Name) -> Name:
        return Name(name.name, name.start + self.delta, name.end + self.delta, self.index)

    def opt_name(self, name: Name | None) -> Name | None:
        return None if name is None else self.name(name)

    def items(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            if isinstance(item, Intent):
                out.append(self.intent(item))
            else:
                out.append(
                    Batch(
                        self.opt_name(item.name),
                        [self.intent(i) for i in item.intents],
                        self.span(item.span),
                        self.span(item.keyword_span),
                    )
                )
        return out

    def intent(self, intent: Intent) -> Intent:
        d, index = self.delta, self.index
        params = [
            Param(
                self.name(p.name),
                self.opt_name(p.type),
                p.start + d,
                p.end + d,
                index,
                p.secret,
                p.external,
            )
            for p in intent.params
        ]
        return Intent(
            self.opt_name(intent.name),
            params,
            [self.block(b) for b in intent.blocks],
            self.span(intent.span),
            self.span(intent.keyword_span),
            intent.batch,
        )

    def block(self, block: Block) -> Block:
        d, index = self.delta, self.index
        conditions = [
            Condition(self.body(c.body), c.start + d, c.end + d, index, c.secret, c.external)
            for c in block.conditions
        ]
        settings = [
            Setting(self.name(s.key), self.opt_name(s.value), s.start + d, s.end + d, index)
            for s in block.settings
        ]
        return Block(
            block.kind,
            self.span(block.keyword_span),
            self.span(block.span),
            conditions,
            settings,
            block.closed,
        )

    def body(self, body: Comparison | Implication) -> Comparison | Implication:
        if isinstance(body, Comparison):
            return self.comparison(body)
        return Implication(
            self.comparison(body.antecedent), self.comparison(body.consequent), self.span(body.span)
        )

    def comparison(self, comp: Comparison) -> Comparison:
        d = self.delta
        return Comparison(
            self.expr(comp.left),
            comp.op,
            self.expr(comp.right),
            comp.start + d,
            comp.end + d,
            self.index,
            comp.parenthesized,
        )

    def expr(self, expr: Expr) -> Expr:
        """Iterative along left-deep operator chains (which can be as long as a line);
        recursion only into right operands and groups, whose depth the parser bounds."""
        d, index = self.delta, self.index
        kind = type(expr)
        if kind is Name:
            assert isinstance(expr, Name)
            return Name(expr.name, expr.start + d, expr.end + d, index)
        if kind is Number:
            assert isinstance(expr, Number)
            return Number(expr.text, expr.start + d, expr.end + d, index)
        if kind is BinOp:
            leaf, ops = left_spine(expr)
            out = self.expr(leaf)
            for op in ops:
                out = BinOp(op.op, out, self.expr(op.right), op.start + d, op.end + d, index)
            return out
        if kind is Group:
            assert isinstance(expr, Group)
            return Group(self.expr(expr.inner), self.span(expr.span))
        assert isinstance(expr, MissingExpr)
        return MissingExpr(self.span(expr.span))
