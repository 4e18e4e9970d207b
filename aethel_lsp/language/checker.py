"""The Aethel checker: structural rules plus z3 proofs, one intent at a time.

What it establishes (SPEC.md, "What the upstream checker establishes"), each finding a
`Diagnostic` whose message carries the solver's evidence:

- conservation: balance changes in `verify` (`x == old_x + e` is `+e`, `x == old_x - e`
  is `-e`) must sum to zero, numerically or proved under the guard; otherwise a
  counterexample model is shown;
- overflow: arithmetic on literals stays within signed 64 bits;
- vacuous guard: the guard can be satisfied at all (else: the contradicting conditions,
  an unsat core);
- consistency: guard and verify can hold together (else: the unsat core);
- duplicate intent names, duplicate parameters, unknown blocks, empty blocks.

Two-state reading.  By convention `old_x` is the value of `x` before the intent and
the guard pins it (`old_x == x;`).  Reading guard and verify over the *same* `x` would
make every transfer contradictory (`x == old_x - amount` with `old_x == x` forces
`amount == 0`), so a name `x` for which `old_x` occurs in the intent is a state
variable: the guard sees its pre-state value, verify its post-state value.  All other
names (parameters, thresholds, `old_*` snapshots) are one unknown each.

Concurrency.  Each `check()` call uses its own z3 `Context`, so several documents can
be checked on worker threads at once; every query has a z3 timeout, and `cancel` is
polled between intents and between queries (`CheckCancelled` is raised).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from aethel_lsp.language.ast import (
    BinOp,
    Block,
    Comparison,
    Condition,
    Expr,
    Group,
    Implication,
    Intent,
    MissingExpr,
    Name,
    Number,
    Program,
    comparisons,
    condition_names,
    left_spine,
    walk_expr,
)
from aethel_lsp.language.diagnostics import Diagnostic, Severity
from aethel_lsp.language.formatter import render_condition, render_expr
from aethel_lsp.language.lazy_import import lazy_module
from aethel_lsp.language.parser import ParseResult, parse
from aethel_lsp.language.spans import Span

if TYPE_CHECKING:
    import z3
else:
    z3 = lazy_module("z3")  # imported at the first check, not at server start

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "INT64_MAX",
    "INT64_MIN",
    "Analysis",
    "CheckCancelled",
    "analyze",
    "check",
]

DEFAULT_TIMEOUT_MS = 2000
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

CancelToken = threading.Event | Callable[[], bool] | None

_UNKNOWN_BLOCK_HINTS = {
    "ensure": "verify",
    "ensures": "verify",
    "post": "verify",
    "postcondition": "verify",
    "postconditions": "verify",
    "effects": "verify",
    "effect": "verify",
    "require": "guard",
    "requires": "guard",
    "pre": "guard",
    "precondition": "guard",
    "preconditions": "guard",
    "when": "guard",
    "hints": "solve",
    "config": "solve",
}


class CheckCancelled(Exception):
    """The caller cancelled the check (the document changed); results are discarded."""


@dataclass
class Analysis:
    """parse + check of one text."""

    parse: ParseResult
    findings: list[Diagnostic] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        merged = [*self.parse.diagnostics, *self.findings]
        merged.sort(key=lambda d: (d.range.start.offset, d.range.end.offset))
        return merged

    @property
    def valid(self) -> bool:
        return self.parse.ok and not any(d.severity == Severity.ERROR for d in self.findings)

    @property
    def omitted(self) -> int:
        """Syntax errors beyond `parser.MAX_DIAGNOSTICS`, counted but not listed."""
        return self.parse.omitted


def analyze(
    text: str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS, cancel: CancelToken = None
) -> Analysis:
    """Parse, then check: every diagnostic the CLI and the server report for `text`."""
    result = parse(text)
    findings = check(
        result.program,
        timeout_ms=timeout_ms,
        cancel=cancel,
        syntax_errors=result.diagnostics,
        error_offsets=result.error_offsets,
    )
    return Analysis(result, findings)


def check(
    program: Program,
    *,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    cancel: CancelToken = None,
    syntax_errors: Sequence[Diagnostic] = (),
    error_offsets: Sequence[int] | None = None,
) -> list[Diagnostic]:
    """Structural and solver findings for `program`.

    Solver checks are skipped for an intent that contains a syntax error (the parser's
    recovery guesses would produce misleading proofs): `error_offsets` (a parse's
    `error_offsets`, which also covers errors beyond the listed ones) or else the
    errors in `syntax_errors` say where they are.  Blocking: call it from a worker
    thread; raises `CheckCancelled` when `cancel` fires.
    """
    is_cancelled = _cancel_probe(cancel)
    out: list[Diagnostic] = []
    intents = program.intents()
    out.extend(_structural(intents))
    offsets = sorted(
        error_offsets
        if error_offsets is not None
        else (d.range.start.offset for d in syntax_errors if d.severity == Severity.ERROR)
    )
    ctx = z3.Context()
    for intent in intents:
        if is_cancelled():
            raise CheckCancelled
        out.extend(_overflow(intent))
        if _has_error_inside(intent.span, offsets):
            continue
        out.extend(_IntentProver(intent, ctx, timeout_ms, is_cancelled).run())
    out.sort(key=lambda d: (d.range.start.offset, d.range.end.offset))
    return out


def _cancel_probe(cancel: CancelToken) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def _has_error_inside(span: Span, error_offsets: Sequence[int]) -> bool:
    pos = bisect_left(error_offsets, span.start)
    return pos < len(error_offsets) and error_offsets[pos] <= span.end


def _diag(span: Span, message: str, code: str, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(span.range, severity, message, code)


def _line(span: Span) -> int:
    return span.start_line + 1


# --------------------------------------------------------------------- structure


def _structural(intents: list[Intent]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: dict[str, Intent] = {}
    for intent in intents:
        if intent.name is not None:
            first = seen.get(intent.name.name)
            if first is not None and first.name is not None:
                scope = (
                    f"atomic_batch `{intent.batch}`"
                    if intent.batch is not None and intent.batch == first.batch
                    else "a file"
                )
                out.append(
                    _diag(
                        intent.name.span,
                        f"intent `{intent.name.name}` is already defined on line "
                        f"{_line(first.name.span)}: intent names must be unique within "
                        f"{scope}; rename one of them",
                        "duplicate-intent",
                    )
                )
            else:
                seen[intent.name.name] = intent
        params: dict[str, Name] = {}
        for param in intent.params:
            prior = params.get(param.name.name)
            if prior is not None:
                out.append(
                    _diag(
                        param.name.span,
                        f"parameter `{param.name.name}` is already declared on line "
                        f"{_line(prior.span)}: rename or remove it",
                        "duplicate-param",
                    )
                )
            else:
                params[param.name.name] = param.name
        for block in intent.blocks:
            out.extend(_block_findings(block))
    return out


def _block_findings(block: Block) -> list[Diagnostic]:
    if not block.is_known:
        target = _UNKNOWN_BLOCK_HINTS.get(block.kind.lower())
        hint = f": did you mean `{target}`?" if target else ""
        return [
            _diag(
                block.keyword_span,
                f"unknown block `{block.kind}`{hint} An intent has `guard` (preconditions), "
                "`solve` (hints such as `priority: security;`) and `verify` (postconditions)",
                "unknown-block",
            )
        ]
    if block.is_empty and block.closed:
        example = {
            "guard": "a precondition such as `amount > 0;`",
            "solve": "a hint such as `priority: security;`",
            "verify": "a postcondition such as `balance == old_balance - amount;`",
        }[block.kind]
        return [
            _diag(
                block.keyword_span,
                f"`{block.kind}` block is empty: add at least one entry, e.g. {example}",
                "empty-block",
            )
        ]
    return []


# --------------------------------------------------------------------- overflow


def _overflow(intent: Intent) -> list[Diagnostic]:
    """Literal-only subexpressions whose value leaves signed 64-bit range."""
    out: list[Diagnostic] = []
    for block in intent.blocks:
        for condition in block.conditions:
            for comp in comparisons(condition):
                for side in (comp.left, comp.right):
                    _overflow_expr(side, out)
    return out


def _overflow_expr(expr: Expr, out: list[Diagnostic]) -> Fraction | None:
    """Report the outermost out-of-range constant subexpression(s) once each.

    Returns the value of `expr` when it is a literal-only expression with nothing
    reported inside, else None (so enclosing expressions report nothing more).
    Iterative along operator chains (`left_spine`), so a long sum cannot exhaust the
    stack, and each node is evaluated once."""
    base, ops = left_spine(expr)
    value = _overflow_operand(base, out)
    for node in ops:
        right = _overflow_expr(node.right, out)
        if value is None or right is None:
            value = None
            continue
        left = value
        if right == 0 and node.op in ("/", "%"):
            out.append(_diag(node.span, "division by zero in a literal expression", "overflow"))
            value = None
            continue
        value = _apply(node.op, left, right)
        if value.denominator == 1 and not INT64_MIN <= value <= INT64_MAX:
            bound = "maximum" if value > INT64_MAX else "minimum"
            limit = INT64_MAX if value > INT64_MAX else INT64_MIN
            out.append(
                _diag(
                    node.span,
                    f"integer overflow: {_fmt(left)} {node.op} {_fmt(right)} = {_fmt(value)} "
                    f"exceeds the signed 64-bit {bound} {limit}",
                    "overflow",
                )
            )
            value = None
    return value


def _overflow_operand(expr: Expr, out: list[Diagnostic]) -> Fraction | None:
    """`_overflow_expr` for a number, a group, a name or a gap."""
    if isinstance(expr, Number):
        if expr.is_integer and not INT64_MIN <= int(expr.text) <= INT64_MAX:
            out.append(
                _diag(
                    expr.span,
                    f"integer overflow: literal {expr.text} is outside the signed 64-bit range "
                    f"[{INT64_MIN}, {INT64_MAX}]",
                    "overflow",
                )
            )
            return None
        return Fraction(expr.text)
    if isinstance(expr, Group):
        return _overflow_expr(expr.inner, out)
    if isinstance(expr, BinOp):  # not reached: left_spine unwinds operations
        return _overflow_expr(expr, out)
    return None


def _apply(op: str, left: Fraction, right: Fraction) -> Fraction:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    integers = left.denominator == 1 and right.denominator == 1
    if op == "/":
        # z3 integer division: Euclidean (remainder is never negative)
        if integers:
            q = left // right if right > 0 else -(left // -right)
            return Fraction(q)
        return left / right
    if integers:
        return Fraction(left - right * (left // right if right > 0 else -(left // -right)))
    return left % right


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


# --------------------------------------------------------------------- solver


@dataclass
class _BalanceChange:
    target: str
    sign: int  # +1 / -1 for the whole amount expression
    terms: list[tuple[int, Expr]]  # signed amount terms
    condition: Condition


class _Unsupported(Exception):
    pass


class _IntentProver:
    """Translates one intent to z3 and runs the consistency/vacuity/conservation queries."""

    def __init__(
        self, intent: Intent, ctx: z3.Context, timeout_ms: int, is_cancelled: Callable[[], bool]
    ) -> None:
        self.intent = intent
        self.ctx = ctx
        self.timeout_ms = timeout_ms
        self.is_cancelled = is_cancelled
        names = {
            n.name
            for block in intent.blocks
            if block.is_known
            for c in block.conditions
            for n in condition_names(c)
        }
        self.state_vars = {n for n in names if f"old_{n}" in names}
        self.real = any(
            isinstance(leaf, Number) and not leaf.is_integer
            for block in intent.blocks
            for c in block.conditions
            for comp in comparisons(c)
            for side in (comp.left, comp.right)
            for leaf in _leaves(side)
        )
        self.vars: dict[str, Any] = {}

    # -- translation

    def var(self, name: str, post: bool) -> Any:
        key = f"{name}'" if post and name in self.state_vars else name
        v = self.vars.get(key)
        if v is None:
            v = z3.Real(key, self.ctx) if self.real else z3.Int(key, self.ctx)
            self.vars[key] = v
        return v

    def expr(self, e: Expr, post: bool) -> Any:
        """z3 term for `e` (iterative along operator chains, see `left_spine`)."""
        base, ops = left_spine(e)
        value = self.operand(base, post)
        for node in ops:
            right = self.expr(node.right, post)
            if node.op == "+":
                value = value + right
            elif node.op == "-":
                value = value - right
            elif node.op == "*":
                value = value * right
            elif node.op == "/":
                value = value / right
            elif self.real:
                raise _Unsupported("`%` together with decimal numbers")
            else:
                value = value % right
        return value

    def operand(self, e: Expr, post: bool) -> Any:
        if isinstance(e, Name):
            return self.var(e.name, post)
        if isinstance(e, Number):
            if self.real:
                return z3.RealVal(e.text, self.ctx)
            return z3.IntVal(int(e.text), self.ctx)
        if isinstance(e, (Group, BinOp)):
            return self.expr(e.inner if isinstance(e, Group) else e, post)
        raise _Unsupported("an incomplete expression")

    def comparison(self, c: Comparison, post: bool) -> Any:
        left, right = self.expr(c.left, post), self.expr(c.right, post)
        op = c.op
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        return left >= right

    def condition(self, c: Condition, post: bool) -> Any:
        body = c.body
        if isinstance(body, Implication):
            return z3.Implies(
                self.comparison(body.antecedent, post), self.comparison(body.consequent, post)
            )
        return self.comparison(body, post)

    # -- queries

    def solver(self) -> z3.Solver:
        if self.is_cancelled():
            raise CheckCancelled
        s = z3.Solver(ctx=self.ctx)
        s.set("timeout", max(1, int(self.timeout_ms)))
        return s

    def run(self) -> list[Diagnostic]:
        guard = self.intent.block("guard")
        verify = self.intent.block("verify")
        if guard is None or verify is None:
            return []
        try:
            g = [(c, self.condition(c, post=False)) for c in guard.conditions]
            v = [(c, self.condition(c, post=True)) for c in verify.conditions]
        except _Unsupported as exc:
            return [
                _diag(
                    self.intent.keyword_span,
                    f"not checked: the solver cannot reason about {exc} in intent "
                    f"`{self.intent.display_name}`",
                    "unsupported",
                    Severity.INFORMATION,
                )
            ]
        out: list[Diagnostic] = []
        guard_ok = self.check_guard(guard, g, out)
        if guard_ok:
            self.check_consistency(verify, g, v, out)
        self.check_conservation(verify, g, out)
        return out

    def tracked(
        self, pairs: list[tuple[Condition, Any]], prefix: str
    ) -> tuple[z3.Solver, dict[str, Condition]]:
        s = self.solver()
        labels: dict[str, Condition] = {}
        for n, (cond, formula) in enumerate(pairs):
            label = f"{prefix}{n}"
            labels[label] = cond
            s.assert_and_track(formula, z3.Bool(label, self.ctx))
        return s, labels

    def unknown(self, block: Block, what: str) -> Diagnostic:
        return _diag(
            block.keyword_span,
            f"not proved: the solver could not decide {what} within {self.timeout_ms} ms "
            f"(intent `{self.intent.display_name}`); simplify the conditions or raise the "
            "time limit",
            "solver-unknown",
            Severity.WARNING,
        )

    def core_text(self, s: z3.Solver, labels: dict[str, Condition]) -> tuple[str, list[Condition]]:
        core = sorted(
            (labels[str(b)] for b in s.unsat_core() if str(b) in labels),
            key=lambda c: c.span.start,
        )
        text = " and ".join(f"`{render_condition(c)}` (line {_line(c.span)})" for c in core)
        return text, core

    def check_guard(
        self, guard: Block, g: list[tuple[Condition, Any]], out: list[Diagnostic]
    ) -> bool:
        if not g:
            return True
        s, labels = self.tracked(g, "g")
        result = s.check()
        if result == z3.sat:
            return True
        if result == z3.unknown:
            out.append(self.unknown(guard, "whether the guard can hold"))
            return False
        text, core = self.core_text(s, labels)
        span = core[0].span if core else guard.keyword_span
        if len(core) == 1:
            reason = f"{text} is false for every value"
        else:
            reason = f"{text} contradict each other"
        out.append(
            _diag(
                span,
                f"vacuous guard: the guard of intent `{self.intent.display_name}` can never "
                f"hold ({reason}; unsat core from z3), so the intent can never run and "
                'anything would be "proved" about it',
                "vacuous-guard",
            )
        )
        return False

    def check_consistency(
        self,
        verify: Block,
        g: list[tuple[Condition, Any]],
        v: list[tuple[Condition, Any]],
        out: list[Diagnostic],
    ) -> None:
        if not v:
            return
        s, labels = self.tracked([*g, *v], "c")
        result = s.check()
        if result == z3.sat:
            return
        if result == z3.unknown:
            out.append(self.unknown(verify, "whether guard and verify can hold together"))
            return
        text, core = self.core_text(s, labels)
        verify_core = [c for c in core if any(c is cv for cv, _ in v)]
        span = verify_core[0].span if verify_core else verify.keyword_span
        who = "verify conditions" if len(verify_core) == len(core) else "guard and verify"
        out.append(
            _diag(
                span,
                f"inconsistent: the {who} of intent `{self.intent.display_name}` can never "
                f"hold together ({text} contradict each other; unsat core from z3)",
                "inconsistent",
            )
        )

    # -- conservation

    def balance_changes(self, verify: Block) -> list[_BalanceChange]:
        changes: list[_BalanceChange] = []
        for cond in verify.conditions:
            body = cond.body
            if not isinstance(body, Comparison) or body.op != "==":
                continue
            change = _balance_change(body.left, body.right, cond) or _balance_change(
                body.right, body.left, cond
            )
            if change is not None:
                changes.append(change)
        return changes

    def check_conservation(
        self, verify: Block, g: list[tuple[Condition, Any]], out: list[Diagnostic]
    ) -> None:
        changes = self.balance_changes(verify)
        if not changes or all(not ch.terms for ch in changes):
            return
        total = z3.IntVal(0, self.ctx) if not self.real else z3.RealVal(0, self.ctx)
        try:
            for ch in changes:
                for sign, term in ch.terms:
                    value = self.expr(term, post=True)
                    total = total + value if sign > 0 else total - value
        except _Unsupported:
            return
        summary = ", ".join(_describe_change(ch) for ch in changes)
        simplified = z3.simplify(total)
        if z3.is_int_value(simplified) or z3.is_rational_value(simplified):
            net = _z3_number(simplified)
            if net != "0":
                verb = "destroyed" if net.startswith("-") else "created"
                out.append(
                    _diag(
                        verify.keyword_span,
                        f"conservation violated in intent `{self.intent.display_name}`: the "
                        f"balance changes sum to {_signed(net)}, not 0, for every input "
                        f"({summary}); value is {verb}",
                        "conservation",
                    )
                )
            return
        s = self.solver()
        for _, formula in g:
            s.add(formula)
        s.add(total != 0)
        result = s.check()
        if result == z3.unsat:
            return
        if result == z3.unknown:
            out.append(self.unknown(verify, "whether the balance changes sum to zero"))
            return
        model = s.model()
        net = _z3_number(model.eval(total, model_completion=True))
        shown = sorted({str(d) for d in _free_consts(total)}, key=lambda n: (n.endswith("'"), n))
        assignment = ", ".join(
            f"{name.rstrip(chr(39))} = {_z3_number(model.eval(self.vars[name], True))}"
            for name in shown
            if name in self.vars
        )
        out.append(
            _diag(
                verify.keyword_span,
                f"conservation violated in intent `{self.intent.display_name}`: the balance "
                f"changes ({summary}) do not always sum to 0; counterexample allowed by the "
                f"guard: {assignment} gives a net change of {_signed(net)}",
                "conservation",
            )
        )


def _leaves(expr: Expr) -> list[Name | Number]:
    return walk_expr(expr)


def _additive_terms(expr: Expr) -> list[tuple[int, Expr]]:
    """Flatten a +/- chain (not entering parentheses) into signed terms."""
    terms: list[tuple[int, Expr]] = []
    while isinstance(expr, BinOp) and expr.op in ("+", "-"):
        terms.append((1 if expr.op == "+" else -1, expr.right))
        expr = expr.left
    terms.append((1, expr))
    terms.reverse()
    return terms


def _balance_change(target: Expr, value: Expr, cond: Condition) -> _BalanceChange | None:
    """`x == old_x ± e ...` → the signed terms of the change; None if not that shape."""
    if not isinstance(target, Name) or isinstance(value, MissingExpr):
        return None
    terms = _additive_terms(value)
    head_sign, head = terms[0]
    if head_sign != 1 or not isinstance(head, Name) or head.name != f"old_{target.name}":
        return None
    return _BalanceChange(target.name, 1, terms[1:], cond)


def _describe_change(ch: _BalanceChange) -> str:
    if not ch.terms:
        return f"{ch.target}: 0"
    parts = []
    for n, (sign, term) in enumerate(ch.terms):
        text = render_expr(term)
        if n == 0:
            parts.append(("+" if sign > 0 else "-") + text)
        else:
            parts.append((" + " if sign > 0 else " - ") + text)
    return f"{ch.target}: {''.join(parts)}"


def _z3_number(value: Any) -> str:
    if z3.is_int_value(value):
        return str(value.as_long())
    if z3.is_rational_value(value):
        frac = Fraction(value.numerator_as_long(), value.denominator_as_long())
        return _fmt(frac)
    return str(value)


def _signed(net: str) -> str:
    return net if net.startswith("-") else f"+{net}"


def _free_consts(expr: Any) -> list[Any]:
    out: dict[str, Any] = {}
    stack = [expr]
    while stack:
        e = stack.pop()
        if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            out[str(e)] = e
        else:
            stack.extend(e.children())
    return list(out.values())
