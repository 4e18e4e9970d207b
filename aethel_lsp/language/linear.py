"""Linear normal form of Aethel expressions, and balance changes read from it.

Conservation must follow the arithmetic meaning of a verify line, not its shape:
`x == old_x - e`, `x == (old_x - e)`, `x == e + old_x` (the change is `+e`) and
`old_x - x == e` (`-e`) all state a change of `x`.  Each side is normalised to
`constant + Σ coefficient·atom` over exact rationals, where an atom is a name or an
opaque subexpression the normal form cannot open (a product of two unknowns, an integer
division or remainder, which are not linear).  Parentheses, operand order and sides
then no longer matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from aethel_lsp.language.ast import (
    BinOp,
    Comparison,
    Condition,
    Expr,
    Group,
    Name,
    Number,
    left_spine,
    walk_expr,
)
from aethel_lsp.language.formatter import render_expr
from aethel_lsp.language.numbers import (
    fraction_text,
    integer_divide,
    integer_remainder,
    literal_value,
)

__all__ = ["BalanceChange", "LinearForm", "Rational", "balance_change", "linearize"]

# Exact coefficients: plain ints in the common case (Fraction arithmetic costs ~10x more,
# and the checker normalises every verify line of every intent), Fractions for decimals.
Rational = int | Fraction


@dataclass
class LinearForm:
    """`constant + Σ coefficients[key]·atoms[key]`; keys in order of first appearance
    (so a change renders in the order the user wrote it), no zero coefficients."""

    coefficients: dict[str, Rational] = field(default_factory=dict)
    atoms: dict[str, Expr] = field(default_factory=dict)
    constant: Rational = 0

    @classmethod
    def of_atom(cls, key: str, atom: Expr) -> LinearForm:
        return cls({key: 1}, {key: atom})

    @property
    def is_constant(self) -> bool:
        return not self.coefficients

    def add(self, other: LinearForm, factor: Rational = 1) -> None:
        """self += factor·other (in place)."""
        for key, coefficient in other.coefficients.items():
            total = self.coefficients.get(key, 0) + factor * coefficient
            if total:
                self.coefficients[key] = total
                self.atoms.setdefault(key, other.atoms[key])
            else:
                self.coefficients.pop(key, None)
        self.constant += factor * other.constant

    def scale(self, factor: Rational) -> None:
        """self *= factor (in place)."""
        if not factor:
            self.coefficients.clear()
            self.constant = 0
            return
        for key in self.coefficients:
            self.coefficients[key] *= factor
        self.constant *= factor

    def without(self, *keys: str) -> LinearForm:
        kept = {k: c for k, c in self.coefficients.items() if k not in keys}
        return LinearForm(kept, {k: self.atoms[k] for k in kept}, self.constant)

    def names(self) -> set[str]:
        """Every name the form depends on, including those inside opaque atoms."""
        out: set[str] = set()
        for atom in self.atoms.values():
            out.update(leaf.name for leaf in walk_expr(atom) if isinstance(leaf, Name))
        return out

    def render(self) -> str:
        """`-amount`, `+amount + 1`, `-0.05 * amount`, `0` (a change as the user reads it)."""
        parts: list[str] = []
        for key, coefficient in self.coefficients.items():
            magnitude = abs(Fraction(coefficient))
            text = key if isinstance(self.atoms[key], Name) or magnitude == 1 else f"({key})"
            if magnitude != 1:
                text = f"{fraction_text(magnitude)} * {text}"
            parts.append(_signed_part(coefficient < 0, text, first=not parts))
        if self.constant or not parts:
            magnitude = abs(Fraction(self.constant))
            parts.append(_signed_part(self.constant < 0, fraction_text(magnitude), not parts))
        return "".join(parts)


def _signed_part(negative: bool, text: str, first: bool) -> str:
    if first:
        return ("-" if negative else "+") + text if text != "0" else "0"
    return (" - " if negative else " + ") + text


def linearize(expr: Expr) -> LinearForm | None:
    """The normal form of `expr`; None for a gap (`MissingExpr`) or a literal too long
    to have a value.  Iterative along operator chains (`left_spine`)."""
    base, ops = left_spine(expr)
    acc = _operand(base)
    for node in ops:
        if acc is None:
            return None
        right = linearize(node.right)
        if right is None:
            return None
        if node.op in ("+", "-"):
            acc.add(right, 1 if node.op == "+" else -1)
        elif node.op == "*":
            if right.is_constant:
                acc.scale(right.constant)
            elif acc.is_constant:
                right.scale(acc.constant)
                acc = right
            else:
                acc = LinearForm.of_atom(render_expr(node), node)
        else:
            acc = _divide(node, acc, right)
    return acc


def _operand(expr: Expr) -> LinearForm | None:
    if isinstance(expr, Name):
        return LinearForm.of_atom(expr.name, expr)
    if isinstance(expr, Number):
        text = expr.text
        if len(text) < 19 and "." not in text:  # the common case: a small integer
            return LinearForm(constant=int(text))
        value = literal_value(text)
        if value is None:
            return None
        return LinearForm(constant=value.numerator if value.denominator == 1 else value)
    if isinstance(expr, Group):
        return linearize(expr.inner)
    if isinstance(expr, BinOp):  # not reached: left_spine unwinds operations
        return linearize(expr)
    return None


def _divide(node: BinOp, left: LinearForm, right: LinearForm) -> LinearForm:
    """Integer `/` and `%` are not linear: an atom, unless both sides are integers."""
    a, b = left.constant, right.constant
    if left.is_constant and right.is_constant and isinstance(a, int) and isinstance(b, int) and b:
        op = integer_divide if node.op == "/" else integer_remainder
        return LinearForm(constant=op(a, b))
    return LinearForm.of_atom(render_expr(node), node)


def _ratio(a: Rational, b: Rational) -> Rational:
    """a / b exactly: an int when it divides evenly."""
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return Fraction(a) / b


@dataclass
class BalanceChange:
    """A verify line that changes state variable `target` by `change` (= x - old_x)."""

    target: str
    change: LinearForm
    condition: Condition

    def describe(self) -> str:
        return f"{self.target}: {self.change.render()}"


def balance_change(
    comparison: Comparison, condition: Condition, state_vars: set[str]
) -> BalanceChange | None:
    """The change an `==` line makes to a state variable `x`, whatever its shape.

    The line must mention `x` and `old_x`, exactly one such pair, with `x` linear
    (`c·x + d·old_x + rest == 0`, c != 0, `rest` free of both), so that
    `x - old_x == -rest/c - (d/c + 1)·old_x`: `x == old_x - e` gives `-e`, and
    `x == old_x - old_x` gives `-old_x`.  Anything else is not a balance change."""
    if comparison.op != "==":
        return None
    mentioned = {leaf.name: leaf for leaf in _names(comparison)}
    pairs = [x for x in state_vars if x in mentioned and f"old_{x}" in mentioned]
    if len(pairs) != 1:
        return None
    target = pairs[0]
    old = f"old_{target}"
    left, right = linearize(comparison.left), linearize(comparison.right)
    if left is None or right is None:
        return None
    left.add(right, -1)
    c = left.coefficients.get(target)
    rest = left.without(target, old)
    if c is None or {target, old} & rest.names():
        return None
    d = left.coefficients.get(old, 0)
    rest.scale(_ratio(-1, c))
    rest.add(LinearForm.of_atom(old, mentioned[old]), -(_ratio(d, c) + 1))
    return BalanceChange(target, rest, condition)


def _names(comparison: Comparison) -> list[Name]:
    leaves = [*walk_expr(comparison.left), *walk_expr(comparison.right)]
    return [leaf for leaf in leaves if isinstance(leaf, Name)]
