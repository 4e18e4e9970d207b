"""The Aethel checker: structural rules plus z3 queries, one intent at a time.

What each check establishes, and what it does not, is the table in docs/aethel.md.
In short, each finding a `Diagnostic` whose message carries the solver's evidence:

- conservation: the balance changes in `verify` (each `==` line that is linear in a
  state variable `x` and `old_x`, normalised: `x == old_x - e`, `x == (old_x - e)`,
  `x == e + old_x`, `old_x - x == e`) must sum to zero, as a constant or, when the
  amounts are symbolic, for every input the guard allows (else a counterexample);
- overflow: arithmetic on literals stays within signed 64 bits; literals have a value
  (no more than `numbers.MAX_LITERAL_DIGITS` digits);
- division by zero: no divisor of `/` or `%` can be 0 where the guard (and, in
  verify, the verify conditions) allow it (else a counterexample);
- vacuous guard: the guard can be satisfied at all (else: the contradicting
  conditions, an unsat core);
- consistency: guard and verify can hold together (else: the unsat core).  This is
  satisfiability, not implication: verify is not shown to follow from the guard;
- optional (`CheckOptions`): every verify line that is not a state update follows from
  the guard and the updates; no arithmetic on unknowns leaves the signed 64-bit range;
- duplicate intent names, duplicate parameters, unknown blocks, empty blocks.

Integer semantics always (SPEC): names are integers, `/` and `%` are z3's `div` and
`mod`, decimals are exact rationals (prover.py).

Two-state reading.  By convention `old_x` is the value of `x` before the intent and
the guard pins it (`old_x == x;`).  Reading guard and verify over the *same* `x` would
make every transfer contradictory (`x == old_x - amount` with `old_x == x` forces
`amount == 0`), so a name `x` for which `old_x` occurs in the intent is a state
variable: the guard sees its pre-state value, verify its post-state value.  All other
names (parameters, thresholds, `old_*` snapshots) are one unknown each.

Budgets.  Every query has a time limit, and all queries of an intent and of a file
share a budget (`CheckOptions`); what the solver could not decide is reported as not
proven (`NOT_PROVEN_CODES`: warnings, errors when `strict`).

Concurrency.  Each `check()` call uses its own z3 `Context`, so several documents can
be checked on worker threads at once; `cancel` is polled between intents and between
queries (`CheckCancelled` is raised).
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from aethel_lsp.language.ast import (
    BinOp,
    Block,
    Expr,
    Group,
    Intent,
    Name,
    Number,
    Program,
    comparisons,
    left_spine,
)
from aethel_lsp.language.check_options import (
    DEFAULT_TIMEOUT_MS,
    NOT_PROVEN_CODES,
    CheckOptions,
)
from aethel_lsp.language.diagnostics import Diagnostic, Severity
from aethel_lsp.language.lazy_import import lazy_module
from aethel_lsp.language.numbers import (
    INT64_MAX,
    INT64_MIN,
    MAX_LITERAL_DIGITS,
    abbreviate,
    fraction_text,
    integer_divide,
    integer_remainder,
    literal_value,
)
from aethel_lsp.language.parser import ParseResult, parse
from aethel_lsp.language.prover import CheckCancelled, IntentProver, SolverBudget
from aethel_lsp.language.prover import diag as _diag
from aethel_lsp.language.prover import line_of as _line
from aethel_lsp.language.spans import Span

if TYPE_CHECKING:
    import z3
else:
    z3 = lazy_module("z3")  # imported at the first check, not at server start

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "INT64_MAX",
    "INT64_MIN",
    "NOT_PROVEN_CODES",
    "Analysis",
    "CheckCancelled",
    "CheckOptions",
    "analyze",
    "check",
]


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

    @property
    def not_proven(self) -> int:
        """Findings that say "the checker could not establish this" (`NOT_PROVEN_CODES`)."""
        return sum(d.code in NOT_PROVEN_CODES for d in self.findings)


def analyze(
    text: str,
    *,
    timeout_ms: int | None = None,
    cancel: CancelToken = None,
    options: CheckOptions | None = None,
) -> Analysis:
    """Parse, then check: every diagnostic the CLI and the server report for `text`."""
    result = parse(text)
    findings = check(
        result.program,
        timeout_ms=timeout_ms,
        cancel=cancel,
        options=options,
        syntax_errors=result.diagnostics,
        error_offsets=result.error_offsets,
    )
    return Analysis(result, findings)


async def analyze_in_thread(text: str) -> Analysis:
    """`analyze` on a worker thread, so the event loop goes on; cancelling the caller
    stops the checker at its next query (and raises `CancelledError`, not `CheckCancelled`)."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(analyze, text, cancel=stop)
    except CheckCancelled:
        raise asyncio.CancelledError from None
    finally:
        stop.set()


def check(
    program: Program,
    *,
    timeout_ms: int | None = None,
    cancel: CancelToken = None,
    options: CheckOptions | None = None,
    syntax_errors: Sequence[Diagnostic] = (),
    error_offsets: Sequence[int] | None = None,
) -> list[Diagnostic]:
    """Structural and solver findings for `program`.

    `options` sets the budgets and optional checks (defaults: `CheckOptions()`);
    `timeout_ms`, when given, overrides its per-query limit.  Solver checks are skipped
    for an intent that contains a syntax error (the parser's recovery guesses would
    produce misleading proofs): `error_offsets` (a parse's `error_offsets`, which also
    covers errors beyond the listed ones) or else the errors in `syntax_errors` say
    where they are.  Blocking: call it from a worker thread; raises `CheckCancelled`
    when `cancel` fires.
    """
    opts = options or CheckOptions()
    if timeout_ms is not None:
        opts = replace(opts, timeout_ms=timeout_ms)
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
    budget = SolverBudget(opts)
    for intent in intents:
        if is_cancelled():
            raise CheckCancelled
        out.extend(_overflow(intent))
        if _has_error_inside(intent.span, offsets):
            continue
        if budget.file_spent:
            out.append(_file_budget_spent(intent, opts))
            continue
        budget.start_intent()
        out.extend(IntentProver(intent, ctx, opts, budget, is_cancelled).run())
    if opts.strict:
        out = [_as_failure(d) for d in out]
    out.sort(key=lambda d: (d.range.start.offset, d.range.end.offset))
    return out


def _file_budget_spent(intent: Intent, options: CheckOptions) -> Diagnostic:
    return _diag(
        intent.keyword_span,
        f"not proven: intent `{intent.display_name}` was not checked because the solver "
        f"budget of this file ({options.file_budget_ms} ms) is spent; split the file or "
        "raise `checker.fileBudgetMs`",
        "solver-budget",
        Severity.WARNING,
    )


def _as_failure(d: Diagnostic) -> Diagnostic:
    """Under `strict`, "not proven" fails like a violation."""
    if d.code not in NOT_PROVEN_CODES or d.severity == Severity.ERROR:
        return d
    return replace(d, severity=Severity.ERROR, message=f"{d.message} (strict: not proven fails)")


def _cancel_probe(cancel: CancelToken) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def _has_error_inside(span: Span, error_offsets: Sequence[int]) -> bool:
    pos = bisect_left(error_offsets, span.start)
    return pos < len(error_offsets) and error_offsets[pos] <= span.end


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
    stack, and each node is evaluated once.  `/` and `%` mean what the SPEC says
    (z3's `div`/`mod`); on a decimal operand they have no value here (the prover
    reports that)."""
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
        if value is not None and not INT64_MIN <= value <= INT64_MAX:
            bound = "maximum" if value > INT64_MAX else "minimum"
            limit = INT64_MAX if value > INT64_MAX else INT64_MIN
            out.append(
                _diag(
                    node.span,
                    f"integer overflow: {fraction_text(left)} {node.op} {fraction_text(right)} "
                    f"= {fraction_text(value)} exceeds the signed 64-bit {bound} {limit}",
                    "overflow",
                )
            )
            value = None
    return value


def _overflow_operand(expr: Expr, out: list[Diagnostic]) -> Fraction | None:
    """`_overflow_expr` for a number, a group, a name or a gap."""
    if isinstance(expr, Number):
        value = literal_value(expr.text)
        if value is None and not expr.is_integer:
            out.append(
                _diag(
                    expr.span,
                    f"number out of range: decimal literal {abbreviate(expr.text)} has more "
                    f"than {MAX_LITERAL_DIGITS} digits",
                    "overflow",
                )
            )
            return None
        if value is None or not INT64_MIN <= value <= INT64_MAX:
            kind = "literal" if expr.is_integer else "decimal literal"
            out.append(
                _diag(
                    expr.span,
                    f"integer overflow: {kind} {abbreviate(expr.text)} is outside the signed "
                    f"64-bit range [{INT64_MIN}, {INT64_MAX}]",
                    "overflow",
                )
            )
            return None
        return value
    if isinstance(expr, Group):
        return _overflow_expr(expr.inner, out)
    if isinstance(expr, BinOp):  # not reached: left_spine unwinds operations
        return _overflow_expr(expr, out)
    return None


def _apply(op: str, left: Fraction, right: Fraction) -> Fraction | None:
    """`left op right` with the SPEC's meaning; None for `/` or `%` of a non-integer."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if left.denominator != 1 or right.denominator != 1:
        return None
    if op == "/":
        return Fraction(integer_divide(left.numerator, right.numerator))
    return Fraction(integer_remainder(left.numerator, right.numerator))
