"""Canonical Aethel formatter.

Prints the syntax tree in one house style (4-space indents, one condition per line,
`a op b` spacing, parameters on one line unless they carry comments or exceed 100
columns) and puts every `#` comment back: own-line comments before the construct that
follows them, trailing comments after the line they were on.  Blank lines between
blocks and conditions are kept (at most one); items are separated by exactly one.
The output depends only on the tree, the comments and where blank lines were, so
formatting is idempotent.  Text with syntax errors is not formatted (returns None):
reprinting a recovery guess would silently rewrite what the user typed.
"""

from __future__ import annotations

from bisect import bisect_left

from aethel_lsp.language.ast import (
    BinOp,
    Block,
    Comment,
    Comparison,
    Condition,
    Expr,
    Group,
    Implication,
    Intent,
    MissingExpr,
    Name,
    Number,
    Param,
    Program,
    left_spine,
)
from aethel_lsp.language.lexer import tokenize
from aethel_lsp.language.parser import ParseResult, parse

__all__ = ["format_text", "render_comparison", "render_condition", "render_expr"]

INDENT = "    "
MAX_LINE = 100


def render_expr(expr: Expr) -> str:
    """Source text of `expr` (iterative along operator chains, see `left_spine`)."""
    base, ops = left_spine(expr)
    parts = [_render_operand(base)]
    for node in ops:
        parts.append(f" {node.op} {render_expr(node.right)}")
    return "".join(parts)


def _render_operand(expr: Expr) -> str:
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Number):
        return expr.text
    if isinstance(expr, Group):
        return f"({render_expr(expr.inner)})"
    if isinstance(expr, BinOp):  # not reached: left_spine unwinds operations
        return render_expr(expr)
    assert isinstance(expr, MissingExpr)
    return "?"


def render_comparison(comp: Comparison) -> str:
    text = f"{render_expr(comp.left)} {comp.op} {render_expr(comp.right)}"
    return f"({text})" if comp.parenthesized else text


def render_condition(cond: Condition) -> str:
    prefix = ("secret " if cond.secret else "") + ("external " if cond.external else "")
    body = cond.body
    if isinstance(body, Implication):
        left = render_comparison(body.antecedent)
        right = render_comparison(body.consequent)
        if not body.antecedent.parenthesized:
            left = f"({left})"
        if not body.consequent.parenthesized:
            right = f"({right})"
        return f"{prefix}{left} ==> {right}"
    return prefix + render_comparison(body)


def render_param(param: Param) -> str:
    prefix = ("secret " if param.secret else "") + ("external " if param.external else "")
    type_text = f": {param.type.name}" if param.type else ""
    return f"{prefix}{param.name.name}{type_text}"


def format_text(text: str, parsed: ParseResult | None = None) -> str | None:
    """The canonical form of `text`, or None when it has syntax errors.

    `parsed` is `parse(text)` when the caller already has it (the editor's cache)."""
    result = parsed if parsed is not None else parse(text)
    if not result.ok:
        return None
    return _Printer(text, result.program).run()


class _Printer:
    def __init__(self, text: str, program: Program) -> None:
        self.text = text
        self.program = program
        self.comments: list[Comment] = program.comments
        self.ci = 0
        self.last_end = 0
        self.lines: list[str] = []
        tokens = tokenize(text)
        self.tok_starts = tokens.starts
        self.tok_kinds = tokens.kinds

    # -- plumbing

    def next_token(self, kind: str, offset: int) -> int:
        """Start offset of the first `kind` token at or after `offset`."""
        i = bisect_left(self.tok_starts, offset)
        while self.tok_kinds[i] != kind and self.tok_kinds[i] != "eof":
            i += 1
        return self.tok_starts[i]

    def blank_between(self, start: int, end: int) -> bool:
        return self.text.count("\n", start, end) >= 2

    def leading(self, offset: int, indent: str, mode: str) -> None:
        """Emit comments that start before `offset`, then the blank line policy.

        mode: "none" (no blank line before the first output), "force" (exactly one
        blank line before the first output), "keep" (a blank line if the source had one),
        "close" (like keep, but never a blank line right before the closing brace).
        """
        first = True
        while self.ci < len(self.comments) and self.comments[self.ci].span.start < offset:
            comment = self.comments[self.ci]
            self.blank_line(first, mode, comment.span.start)
            self.lines.append(indent + comment.text)
            self.last_end = comment.span.end
            self.ci += 1
            first = False
        if mode != "close":
            self.blank_line(first, mode, offset)

    def blank_line(self, first: bool, mode: str, offset: int) -> None:
        if (first and mode == "force") or (
            (mode != "none" or not first) and self.blank_between(self.last_end, offset)
        ):
            self.lines.append("")

    def line(self, text: str, end: int, indent: str) -> None:
        """Emit one output line whose source ends at `end`, plus a trailing comment."""
        out = indent + text
        self.last_end = end
        if self.ci < len(self.comments):
            comment = self.comments[self.ci]
            between = self.text[end : comment.span.start]
            if comment.span.start >= end and not between.strip(" \t\r,;"):
                out += "  " + comment.text
                self.last_end = comment.span.end
                self.ci += 1
        self.lines.append(out)

    # -- program

    def run(self) -> str:
        for n, item in enumerate(self.program.items):
            mode = "none" if n == 0 else "force"
            if isinstance(item, Intent):
                self.intent(item, "", mode)
            else:
                self.leading(item.span.start, "", mode)
                name = item.name.name if item.name else ""
                brace = self.next_token("{", item.keyword_span.end)
                self.line(f"atomic_batch {name} {{", brace + 1, "")
                for k, intent in enumerate(item.intents):
                    self.intent(intent, INDENT, "none" if k == 0 else "force")
                self.leading(item.span.end - 1, INDENT, "close")
                self.line("}", item.span.end, "")
        self.leading(len(self.text) + 1, "", "keep")
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines) + "\n"

    def intent(self, intent: Intent, indent: str, mode: str) -> None:
        self.leading(intent.span.start, indent, mode)
        name = intent.name.name if intent.name else ""
        after_name = intent.name.span.end if intent.name else intent.keyword_span.end
        close_paren = self.next_token(
            ")", intent.params[-1].span.end if intent.params else after_name
        )
        brace = self.next_token("{", close_paren)
        params = [render_param(p) for p in intent.params]
        one_line = f"intent {name}({', '.join(params)}) {{"
        has_comments = any(
            after_name <= c.span.start < close_paren for c in self.comments[self.ci :]
        )
        if not has_comments and len(indent) + len(one_line) <= MAX_LINE:
            self.line(one_line, brace + 1, indent)
        else:
            self.line(f"intent {name}(", after_name + 1, indent)
            inner = indent + INDENT
            for k, (param, text) in enumerate(zip(intent.params, params, strict=False)):
                self.leading(param.span.start, inner, "none")
                last = k == len(params) - 1
                self.line(text if last else text + ",", param.span.end, inner)
            self.leading(close_paren, inner, "none")
            self.line(") {", brace + 1, indent)
        inner = indent + INDENT
        for k, block in enumerate(intent.blocks):
            self.block(block, inner, "none" if k == 0 else "keep")
        self.leading(intent.span.end - 1, inner, "close")
        self.line("}", intent.span.end, indent)

    def block(self, block: Block, indent: str, mode: str) -> None:
        self.leading(block.span.start, indent, mode)
        brace = self.next_token("{", block.keyword_span.end)
        self.line(f"{block.kind} {{", brace + 1, indent)
        inner = indent + INDENT
        entries: list[tuple[int, int, str]] = [
            (s.span.start, s.span.end, f"{s.key.name}: {s.value.name if s.value else ''};")
            for s in block.settings
        ]
        entries += [(c.span.start, c.span.end, render_condition(c) + ";") for c in block.conditions]
        entries.sort()
        for k, (start, end, text) in enumerate(entries):
            self.leading(start, inner, "none" if k == 0 else "keep")
            semicolon = self.next_token(";", end)
            self.line(text, semicolon + 1, inner)
        self.leading(block.span.end - 1, inner, "close")
        self.line("}", block.span.end, indent)
