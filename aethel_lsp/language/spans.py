"""Source positions: offsets that turn into 0-based line/column on demand.

The parser creates a span for every node; computing line and column eagerly for each
of them would dominate parse time on large files, so a `Span` keeps the two offsets
plus the shared `LineIndex` and resolves lines lazily (a bisect over line starts).
Columns count Unicode code points; the LSP layer converts them to the negotiated
position encoding (UTF-16 or UTF-8).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add


@dataclass(frozen=True)
class Position:
    """A resolved location: 0-based line, 0-based column (code points), absolute offset."""

    line: int
    column: int
    offset: int


@dataclass(frozen=True)
class Range:
    """A resolved half-open range between two positions."""

    start: Position
    end: Position

    def contains_offset(self, offset: int) -> bool:
        return self.start.offset <= offset <= self.end.offset


class LineIndex:
    """Maps offsets to (line, column) for one text, or for a region of one.

    A region index (`region`) holds only the line starts of some consecutive lines
    and the number of the first: the incremental parser gives each chunk its own, so
    a chunk's nodes stay valid wherever the chunk sits at the same offset and line.
    """

    __slots__ = ("first_line", "line_starts", "text_length")

    def __init__(self, text: str) -> None:
        # line k starts after the k newlines before it; all in C (no per-line Python)
        starts = [0]
        starts += accumulate(map(add, map(len, text.split("\n")[:-1]), repeat(1)))
        self.line_starts = starts
        self.text_length = len(text)
        self.first_line = 0

    @classmethod
    def region(cls, line_starts: list[int], first_line: int, text_length: int) -> LineIndex:
        """The index of lines `first_line...` whose starts are `line_starts`; offsets
        are clamped to `text_length` (the end of the region)."""
        index = cls.__new__(cls)
        index.line_starts = line_starts
        index.first_line = first_line
        index.text_length = text_length
        return index

    def position(self, offset: int) -> Position:
        offset = max(0, min(offset, self.text_length))
        line = max(bisect_right(self.line_starts, offset) - 1, 0)
        return Position(line + self.first_line, offset - self.line_starts[line], offset)

    def offset(self, line: int, column: int) -> int:
        """Offset of a 0-based line/column, clamped to the text."""
        line -= self.first_line
        if line < 0:
            return 0
        if line >= len(self.line_starts):
            return self.text_length
        start = self.line_starts[line]
        end = (
            self.line_starts[line + 1] - 1 if line + 1 < len(self.line_starts) else self.text_length
        )
        return min(start + max(column, 0), end)

    def range(self, start: int, end: int) -> Range:
        return Range(self.position(start), self.position(end))


class Span:
    """The half-open offsets [start, end) of a node, resolvable to lines and columns.

    A plain slotted class (not a frozen dataclass): the parser makes one per node and
    frozen-dataclass construction costs several times more.
    """

    __slots__ = ("end", "index", "start")

    def __init__(self, start: int, end: int, index: LineIndex) -> None:
        self.start = start
        self.end = end
        self.index = index

    def __repr__(self) -> str:
        return f"Span({self.start}, {self.end})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    @property
    def range(self) -> Range:
        return self.index.range(self.start, self.end)

    @property
    def start_line(self) -> int:
        return self.index.position(self.start).line

    @property
    def start_column(self) -> int:
        return self.index.position(self.start).column

    @property
    def end_line(self) -> int:
        return self.index.position(self.end).line

    @property
    def end_column(self) -> int:
        return self.index.position(self.end).column

    def contains(self, offset: int) -> bool:
        return self.start <= offset <= self.end

    def cover(self, other: Span) -> Span:
        return Span(min(self.start, other.start), max(self.end, other.end), self.index)
