"""The Aethel syntax tree.

Every node has its exact `span` (offsets, resolvable to 0-based line/column).  The
numerous nodes (names, numbers, operations, comparisons, conditions, parameters,
settings) store raw `start`/`end` offsets and build the `Span` on demand: fewer
objects per parse is what keeps 20,000-line files fast.  The parser builds this tree even for broken
text: missing pieces are `None` or `MissingExpr`, so symbols, hover and navigation
keep working while the user is typing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aethel_lsp.language.spans import LineIndex, Span

BlockKind = str  # "guard" | "solve" | "verify" | anything else (an unknown block)
KNOWN_BLOCKS: tuple[str, ...] = ("guard", "solve", "verify")
RelOp = Literal[">=", "<=", "==", "!=", ">", "<"]
RELOPS: frozenset[str] = frozenset({">=", "<=", "==", "!=", ">", "<"})


@dataclass(slots=True)
class Name:
    """An identifier.  Leaves keep raw offsets (one object instead of two per leaf: the
    parser makes tens of thousands of them on large files); `span` is built on demand."""

    name: str
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Number:
    text: str  # source text, including a leading "-"
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)

    @property
    def is_integer(self) -> bool:
        return "." not in self.text


@dataclass(slots=True)
class BinOp:
    op: str  # + - * / %
    left: Expr
    right: Expr
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Group:
    """A parenthesised expression; kept so the formatter reproduces the parentheses."""

    inner: Expr
    span: Span

    @property
    def start(self) -> int:
        return self.span.start

    @property
    def end(self) -> int:
        return self.span.end


@dataclass(slots=True)
class MissingExpr:
    """Placeholder where the parser expected an expression and reported an error."""

    span: Span

    @property
    def start(self) -> int:
        return self.span.start

    @property
    def end(self) -> int:
        return self.span.end


Expr = Name | Number | BinOp | Group | MissingExpr


@dataclass(slots=True)
class Comparison:
    left: Expr
    op: str
    right: Expr
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)
    parenthesized: bool = False

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Implication:
    """The extension `(a relop b) ==> (c relop d)`."""

    antecedent: Comparison
    consequent: Comparison
    span: Span


@dataclass(slots=True)
class Condition:
    body: Comparison | Implication
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)
    secret: bool = False
    external: bool = False

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Setting:
    """A `solve` hint `key: value;`."""

    key: Name
    value: Name | None
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Block:
    kind: BlockKind
    keyword_span: Span
    span: Span
    conditions: list[Condition] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    closed: bool = True

    @property
    def is_known(self) -> bool:
        return self.kind in KNOWN_BLOCKS

    @property
    def is_empty(self) -> bool:
        return not self.conditions and not self.settings


@dataclass(slots=True)
class Param:
    name: Name
    type: Name | None
    start: int
    end: int
    index: LineIndex = field(repr=False, compare=False)
    secret: bool = False
    external: bool = False

    @property
    def span(self) -> Span:
        return Span(self.start, self.end, self.index)


@dataclass(slots=True)
class Intent:
    name: Name | None
    params: list[Param]
    blocks: list[Block]
    span: Span
    keyword_span: Span
    batch: str | None = None  # name of the enclosing atomic_batch

    def block(self, kind: str) -> Block | None:
        for block in self.blocks:
            if block.kind == kind:
                return block
        return None

    @property
    def display_name(self) -> str:
        return self.name.name if self.name else "<unnamed>"


@dataclass(slots=True)
class Batch:
    name: Name | None
    intents: list[Intent]
    span: Span
    keyword_span: Span


Item = Intent | Batch


@dataclass(slots=True)
class Comment:
    text: str  # including the leading "#"
    span: Span


@dataclass(slots=True)
class Program:
    items: list[Item]
    comments: list[Comment]
    span: Span
    index: LineIndex

    def intents(self) -> list[Intent]:
        """Every intent, top-level and inside batches, in source order."""
        out: list[Intent] = []
        for item in self.items:
            if isinstance(item, Intent):
                out.append(item)
            else:
                out.extend(item.intents)
        return out


def left_spine(expr: Expr) -> tuple[Expr, list[BinOp]]:
    """The bottom-left operand of an operator chain and the operations above it,
    innermost first.

    `a + b + c + ...` parses left-deep, so a long flat chain is as deep as it is long;
    walkers iterate over the spine and recurse only into right operands and groups,
    whose depth the parser bounds (`parser.MAX_NESTING`)."""
    ops: list[BinOp] = []
    while isinstance(expr, BinOp):
        ops.append(expr)
        expr = expr.left
    ops.reverse()
    return expr, ops


def walk_expr(expr: Expr) -> list[Name | Number]:
    """Leaves of an expression, left to right."""
    out: list[Name | Number] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, BinOp):
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, Group):
            stack.append(node.inner)
        elif isinstance(node, (Name, Number)):
            out.append(node)
    return out


def comparisons(condition: Condition) -> list[Comparison]:
    body = condition.body
    if isinstance(body, Implication):
        return [body.antecedent, body.consequent]
    return [body]


def condition_names(condition: Condition) -> list[Name]:
    names: list[Name] = []
    for comp in comparisons(condition):
        for side in (comp.left, comp.right):
            names.extend(leaf for leaf in walk_expr(side) if isinstance(leaf, Name))
    return names
