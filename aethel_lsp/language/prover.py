"""z3 queries about one intent: guard, consistency, conservation, division by zero, and
the optional implication and 64-bit overflow checks (see checker.py for the reading).

Integer semantics always (SPEC): every name is a z3 `Int`, `/` is z3 `div` and `%` is
z3 `mod`.  A decimal literal is an exact rational (`0.05` is 1/20) compared against
integer terms, so `fee == amount * 0.05` only holds where the product is a whole number.
Integer division of a non-integer term has no SPEC meaning and is reported
(`decimal-division`) instead of being solved.

Every query's time limit is the smallest of the per-query timeout and what is left of
the intent's and the file's budgets (`SolverBudget`); when a budget is spent the rest of
the intent is reported as not proven (`solver-budget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    Name,
    Number,
    comparisons,
    condition_names,
    left_spine,
    walk_expr,
)
from aethel_lsp.language.check_options import CheckOptions
from aethel_lsp.language.diagnostics import Diagnostic, Severity
from aethel_lsp.language.formatter import render_comparison, render_condition, render_expr
from aethel_lsp.language.lazy_import import lazy_module
from aethel_lsp.language.linear import (
    BalanceChange,
    LinearForm,
    Rational,
    balance_change,
    linearize,
)
from aethel_lsp.language.numbers import (
    INT64_MAX,
    INT64_MIN,
    abbreviate,
    fraction_text,
    literal_value,
)
from aethel_lsp.language.spans import Span

if TYPE_CHECKING:
    import z3
else:
    z3 = lazy_module("z3")  # imported at the first check, not at server start

__all__ = ["BudgetSpent", "CheckCancelled", "IntentProver", "SolverBudget", "diag", "line_of"]


class CheckCancelled(Exception):
    """The caller cancelled the check (the document changed); results are discarded."""


def diag(span: Span, message: str, code: str, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(span.range, severity, message, code)


def line_of(span: Span) -> int:
    return span.start_line + 1


class BudgetSpent(Exception):
    """The intent's or the file's solver budget is used up (`scope` says which)."""

    def __init__(self, scope: str, what: str) -> None:
        super().__init__(scope)
        self.scope = scope
        self.what = what


class SolverBudget:
    """Wall-clock milliseconds left for the file and for the current intent."""

    def __init__(self, options: CheckOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        now = clock()
        self.file_deadline = now + options.file_budget_ms / 1000
        self.intent_deadline = now + options.intent_budget_ms / 1000

    def start_intent(self) -> None:
        self.intent_deadline = self.clock() + self.options.intent_budget_ms / 1000

    @property
    def file_spent(self) -> bool:
        return self.clock() >= self.file_deadline

    def query_ms(self, what: str) -> tuple[int, bool]:
        """(time limit for the next query, whether a budget rather than the per-query
        timeout set it); raises `BudgetSpent` when nothing is left."""
        now = self.clock()
        file_left = (self.file_deadline - now) * 1000
        intent_left = (self.intent_deadline - now) * 1000
        if file_left < 1:
            raise BudgetSpent("file", what)
        if intent_left < 1:
            raise BudgetSpent("intent", what)
        left = int(min(file_left, intent_left))
        if left < self.options.timeout_ms:
            return max(1, left), True
        return max(1, self.options.timeout_ms), False


class _Unsupported(Exception):
    pass


class _DecimalDivision(Exception):
    def __init__(self, node: BinOp, operand: Expr) -> None:
        super().__init__(node.op)
        self.node = node
        self.operand = operand


@dataclass
class _Query:
    solver: Any
    timeout_ms: int
    budget_capped: bool
    what: str


Pair = tuple[Condition, Any]
_ALWAYS_ZERO = "always zero"  # marker: a literal divisor that is 0


class IntentProver:
    """Translates one intent to z3 and runs its queries; `run()` returns the findings."""

    def __init__(
        self,
        intent: Intent,
        ctx: z3.Context,
        options: CheckOptions,
        budget: SolverBudget,
        is_cancelled: Callable[[], bool],
    ) -> None:
        self.intent = intent
        self.ctx = ctx
        self.options = options
        self.budget = budget
        self.is_cancelled = is_cancelled
        names = {
            n.name
            for block in intent.blocks
            if block.is_known
            for c in block.conditions
            for n in condition_names(c)
        }
        self.state_vars = {n for n in names if f"old_{n}" in names}
        self.vars: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.intent.display_name

    # -- translation

    def var(self, name: str, post: bool) -> Any:
        key = f"{name}'" if post and name in self.state_vars else name
        v = self.vars.get(key)
        if v is None:
            v = self.vars[key] = z3.Int(key, self.ctx)
        return v

    def number(self, value: Rational) -> Any:
        if isinstance(value, int):
            return z3.IntVal(str(value), self.ctx)
        if value.denominator == 1:
            return z3.IntVal(str(value.numerator), self.ctx)
        return z3.RealVal(f"{value.numerator}/{value.denominator}", self.ctx)

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
            else:
                if not value.is_int():
                    raise _DecimalDivision(node, node.left)
                if not right.is_int():
                    raise _DecimalDivision(node, node.right)
                value = value / right if node.op == "/" else value % right
        return value

    def operand(self, e: Expr, post: bool) -> Any:
        if isinstance(e, Name):
            return self.var(e.name, post)
        if isinstance(e, Number):
            value = literal_value(e.text)
            if value is None:
                raise _Unsupported(f"the number {abbreviate(e.text)}")
            return self.number(value)
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

    def linear_term(self, form: LinearForm, post: bool) -> Any:
        total = self.number(form.constant)
        for key, coefficient in form.coefficients.items():
            atom = self.expr(form.atoms[key], post)
            total = total + (atom if coefficient == 1 else self.number(coefficient) * atom)
        return total

    # -- queries

    def query(self, what: str, *formulas: Any) -> _Query:
        if self.is_cancelled():
            raise CheckCancelled
        timeout_ms, capped = self.budget.query_ms(what)
        s = z3.Solver(ctx=self.ctx)
        s.set("timeout", timeout_ms)
        for formula in formulas:
            s.add(formula)
        return _Query(s, timeout_ms, capped, what)

    def decide(self, q: _Query, block: Block, out: list[Diagnostic]) -> Any:
        """`q`'s result; an unknown is reported here (as a spent budget if a budget, not
        the per-query timeout, limited the query)."""
        result = q.solver.check()
        if result == z3.unknown:
            if q.budget_capped:
                raise BudgetSpent("file" if self.budget.file_spent else "intent", q.what)
            out.append(self.unknown(block, q.what, q.timeout_ms))
        return result

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
                diag(
                    self.intent.keyword_span,
                    f"not checked: the solver cannot reason about {exc} in intent `{self.name}`",
                    "unsupported",
                    Severity.INFORMATION,
                )
            ]
        except _DecimalDivision as exc:
            return [self.decimal_division(exc)]
        out: list[Diagnostic] = []
        try:
            if self.check_guard(guard, g, out):
                self.check_consistency(verify, g, v, out)
                self.check_division(guard, verify, g, v, out)
                if self.options.verify_implied:
                    self.check_implied(verify, g, v, out)
                if self.options.symbolic_overflow:
                    self.check_int64(guard, verify, g, v, out)
            self.check_conservation(verify, g, out)
        except BudgetSpent as spent:
            out.append(self.budget_spent(spent))
        return out

    def decimal_division(self, exc: _DecimalDivision) -> Diagnostic:
        what = "integer division" if exc.node.op == "/" else "the integer remainder"
        return diag(
            exc.operand.span,
            f"decimal operand of `{exc.node.op}`: `{render_expr(exc.operand)}` is not an integer "
            f"term (it contains a decimal number), but `{exc.node.op}` is {what}, which the "
            "SPEC defines on integers only; scale to integers instead (e.g. `amount * 5 / 100` "
            "rather than `amount * 0.05`) or compare without dividing",
            "decimal-division",
        )

    def budget_spent(self, spent: BudgetSpent) -> Diagnostic:
        if spent.scope == "file":
            limit, key = self.options.file_budget_ms, "checker.fileBudgetMs"
            text = f"the solver budget of this file ({limit} ms) is spent"
        else:
            limit, key = self.options.intent_budget_ms, "checker.intentBudgetMs"
            text = f"the solver budget of intent `{self.name}` ({limit} ms) is spent"
        return diag(
            self.intent.keyword_span,
            f"not proven: {text}, so {spent.what} was not decided and the remaining checks "
            f"of intent `{self.name}` did not run; simplify the conditions or raise `{key}`",
            "solver-budget",
            Severity.WARNING,
        )

    def tracked(
        self, pairs: list[Pair], prefix: str, what: str
    ) -> tuple[_Query, dict[str, Condition]]:
        q = self.query(what)
        labels: dict[str, Condition] = {}
        for n, (cond, formula) in enumerate(pairs):
            label = f"{prefix}{n}"
            labels[label] = cond
            q.solver.assert_and_track(formula, z3.Bool(label, self.ctx))
        return q, labels

    def decide_with_core(
        self, pairs: list[Pair], prefix: str, what: str, block: Block, out: list[Diagnostic]
    ) -> tuple[Any, tuple[str, list[Condition]]]:
        """`decide` on `pairs`, and when they are unsat, why (the unsat core as text).

        The core is asked for only once the answer is known: tracking every condition
        slows z3 down badly (3,000 tracked equalities time out where plain ones take a
        tenth of a second). When the core cannot be had in time, every condition is it.
        """
        result = self.decide(self.query(what, *(f for _, f in pairs)), block, out)
        if result != z3.unsat:
            return result, ("", [])
        try:
            q, labels = self.tracked(pairs, prefix, what)
            if q.solver.check() == z3.unsat:
                return result, self.core_text(q.solver, labels)
        except BudgetSpent:
            pass
        return result, (f"its {len(pairs)} conditions", [c for c, _ in pairs])

    def unknown(self, block: Block, what: str, timeout_ms: int) -> Diagnostic:
        return diag(
            block.keyword_span,
            f"not proven: the solver could not decide {what} within {timeout_ms} ms "
            f"(intent `{self.name}`); simplify the conditions or raise the time limit",
            "solver-unknown",
            Severity.WARNING,
        )

    def core_text(self, s: Any, labels: dict[str, Condition]) -> tuple[str, list[Condition]]:
        core = sorted(
            (labels[str(b)] for b in s.unsat_core() if str(b) in labels),
            key=lambda c: c.span.start,
        )
        text = " and ".join(f"`{render_condition(c)}` (line {line_of(c.span)})" for c in core)
        return text, core

    def assignment(self, model: Any, terms: list[Any]) -> str:
        """`a = 1, b = 0` for the unknowns in `terms` (pre-state first)."""
        names: dict[str, Any] = {}
        for term in terms:
            for const in _free_consts(term):
                names.setdefault(str(const), const)
        shown = sorted(names, key=lambda n: (n.endswith("'"), n))
        return ", ".join(
            f"{name.rstrip(chr(39))} = {_z3_number(model.eval(names[name], True))}"
            for name in shown
        )

    def check_guard(self, guard: Block, g: list[Pair], out: list[Diagnostic]) -> bool:
        if not g:
            return True
        result, (text, core) = self.decide_with_core(g, "g", "whether the guard can hold",
                                                     guard, out)
        if result == z3.sat:
            return True
        if result == z3.unknown:
            return False
        span = core[0].span if core else guard.keyword_span
        out.append(
            diag(
                span,
                f"vacuous guard: the guard of intent `{self.name}` can never hold "
                f"({_reason(text, core)}; unsat core from z3), so the intent can never run "
                "and every other check about it holds vacuously",
                "vacuous-guard",
            )
        )
        return False

    def check_consistency(
        self, verify: Block, g: list[Pair], v: list[Pair], out: list[Diagnostic]
    ) -> None:
        if not v:
            return
        result, (text, core) = self.decide_with_core(
            [*g, *v], "c", "whether guard and verify can hold together", verify, out)
        if result != z3.unsat:
            return
        verify_core = [c for c in core if any(c is cv for cv, _ in v)]
        span = verify_core[0].span if verify_core else verify.keyword_span
        who = "verify conditions" if len(verify_core) == len(core) else "guard and verify"
        out.append(
            diag(
                span,
                f"inconsistent: the {who} of intent `{self.name}` can never hold together "
                f"({_reason(text, core)}; unsat core from z3)",
                "inconsistent",
            )
        )

    # -- division by zero

    def check_division(
        self, guard: Block, verify: Block, g: list[Pair], v: list[Pair], out: list[Diagnostic]
    ) -> None:
        """Every `/` and `%` whose divisor the guard (and, in verify, the verify
        conditions) allow to be 0: z3 leaves `x / 0` unconstrained, so a line that divides
        by zero "holds" for any value and nothing about it is established."""
        decided: dict[tuple[str, bool, str], str | None] = {}
        for block, post, base, where in (
            (guard, False, g, "the guard"),
            (verify, True, [*g, *v], "the guard and verify"),
        ):
            for cond in block.conditions:
                for node, premise in _divisions_with_premise(cond):
                    divisor = render_expr(node.right)
                    shown_premise = render_comparison(premise) if premise else ""
                    key = (divisor, post, shown_premise)
                    if key not in decided:
                        assumed, context = base, where
                        if premise is not None:  # `(d != 0) ==> (x / d == 1)`: d is not 0
                            assumed = [*base, (cond, self.comparison(premise, post))]
                            context = f"`{shown_premise}` and {where}"
                        decided[key] = self.zero_divisor(node, post, assumed, block, context,
                                                         out)
                    evidence = decided[key]
                    if evidence is not None:
                        shown = None if evidence is _ALWAYS_ZERO else evidence
                        out.append(self.division_finding(node, divisor, shown))

    def zero_divisor(
        self,
        node: BinOp,
        post: bool,
        base: list[Pair],
        block: Block,
        where: str,
        out: list[Diagnostic],
    ) -> str | None:
        """Why `node`'s divisor can be 0 (None: it cannot, or literals only)."""
        constant = linearize(node.right)
        if constant is not None and constant.is_constant:
            if constant.constant or not (_has_name(node.left) or _has_name(node.right)):
                return None  # a non-zero constant, or `1 / 0` (the literal check reports it)
            return _ALWAYS_ZERO  # `x / 0`, `1 / (d - d)`: no literal check sees these
        divisor = self.expr(node.right, post)
        q = self.query(
            f"whether `{render_expr(node.right)}` can be 0",
            *(f for _, f in base),
            divisor == 0,
        )
        if self.decide(q, block, out) != z3.sat:
            return None
        example = self.assignment(q.solver.model(), [divisor])
        return f"can be 0 under {where} of intent `{self.name}` (counterexample: {example})"

    @staticmethod
    def division_finding(node: BinOp, divisor: str, evidence: str | None) -> Diagnostic:
        kind = "division" if node.op == "/" else "remainder (`%`)"
        if evidence is None:
            evidence, hint = "is 0 for every input", ""
        else:
            hint = f": add a guard such as `{divisor} != 0;`"
        return diag(
            node.span,
            f"{kind} by zero: the divisor `{divisor}` of `{render_expr(node)}` {evidence}; "
            f"z3 gives `x {node.op} 0` an arbitrary value, so this line establishes nothing "
            f"there{hint}",
            "division-by-zero",
        )

    # -- optional: verify implied by guard + state updates

    def is_update(self, cond: Condition) -> bool:
        """`==` over a state variable: what the `solve` step establishes, not a claim."""
        body = cond.body
        return (
            isinstance(body, Comparison)
            and body.op == "=="
            and any(n.name in self.state_vars for n in condition_names(cond))
        )

    def check_implied(
        self, verify: Block, g: list[Pair], v: list[Pair], out: list[Diagnostic]
    ) -> None:
        updates = [f for c, f in v if self.is_update(c)]
        for cond, formula in v:
            if self.is_update(cond):
                continue
            q = self.query(
                f"whether `{render_condition(cond)}` follows from the guard",
                *(f for _, f in g),
                *updates,
                z3.Not(formula),
            )
            if self.decide(q, verify, out) != z3.sat:
                continue
            example = self.assignment(q.solver.model(), [formula])
            out.append(
                diag(
                    cond.span,
                    f"not implied: `{render_condition(cond)}` does not follow from the guard "
                    f"and the state updates of intent `{self.name}` (counterexample: "
                    f"{example or 'any values'}); it can hold, but nothing guarantees it "
                    "(optional check checker.verifyImplied)",
                    "not-implied",
                )
            )

    # -- optional: symbolic 64-bit overflow

    def check_int64(
        self, guard: Block, verify: Block, g: list[Pair], v: list[Pair], out: list[Diagnostic]
    ) -> None:
        for block, post, base in ((guard, False, g), (verify, True, [*g, *v])):
            for cond in block.conditions:
                found = [(n, p) for n, p in _binops_with_premise(cond) if _has_name(n)]
                if not found:
                    continue
                nodes = [n for n, _ in found]
                terms = [self.expr(n, post) for n in nodes]
                bounds = [z3.And(x >= INT64_MIN, x <= INT64_MAX) for x in list(self.vars.values())]
                outside = [  # in `(p) ==> (q)`, q's arithmetic runs only when p holds
                    z3.Or(t < INT64_MIN, t > INT64_MAX) if premise is None
                    else z3.And(self.comparison(premise, post), z3.Or(t < INT64_MIN, t > INT64_MAX))
                    for (_, premise), t in zip(found, terms, strict=True)
                ]
                q = self.query(
                    f"whether `{render_condition(cond)}` stays within 64 bits",
                    *(f for _, f in base),
                    *bounds,
                    z3.Or(*outside),
                )
                if self.decide(q, block, out) != z3.sat:
                    continue
                out.append(self.overflow_finding(q.solver.model(), nodes, terms, outside, post))

    def overflow_finding(
        self, model: Any, nodes: list[BinOp], terms: list[Any], outside: list[Any], post: bool
    ) -> Diagnostic:
        node, term, value = nodes[0], terms[0], None
        for candidate, candidate_term, escapes in zip(nodes, terms, outside, strict=True):
            if not z3.is_true(model.eval(escapes, True)):
                continue  # in range, or in a consequent whose antecedent is false here
            reached = _exact(model.eval(candidate_term, True))
            if reached is not None and not INT64_MIN <= reached <= INT64_MAX:
                node, term, value = candidate, candidate_term, reached
                break
        bound, limit = ("maximum", INT64_MAX) if value and value > 0 else ("minimum", INT64_MIN)
        where = "the guard and verify" if post else "the guard"
        return diag(
            node.span,
            f"64-bit overflow: `{render_expr(node)}` can reach "
            f"{fraction_text(value) if value is not None else 'an out-of-range value'} under "
            f"{where} of intent `{self.name}` ({self.assignment(model, [term])}), beyond the "
            f"signed 64-bit {bound} {limit}, with every unknown itself within 64 bits "
            "(optional check checker.symbolicOverflow)",
            "symbolic-overflow",
        )

    # -- conservation

    def balance_changes(self, verify: Block) -> list[BalanceChange]:
        changes: list[BalanceChange] = []
        for cond in verify.conditions:
            body = cond.body
            if isinstance(body, Comparison):
                change = balance_change(body, cond, self.state_vars)
                if change is not None:
                    changes.append(change)
        return changes

    def check_conservation(self, verify: Block, g: list[Pair], out: list[Diagnostic]) -> None:
        """The changes' sum (their normal forms added up) must be 0 under the guard."""
        changes = self.balance_changes(verify)
        if not changes or all(ch.change.is_constant and not ch.change.constant for ch in changes):
            return
        net = LinearForm()
        for ch in changes:
            net.add(ch.change)
        summary = ", ".join(ch.describe() for ch in changes)
        if net.is_constant:
            if net.constant:
                verb = "destroyed" if net.constant < 0 else "created"
                out.append(
                    diag(
                        verify.keyword_span,
                        f"conservation violated in intent `{self.name}`: the balance changes "
                        f"sum to {_signed(net.constant)}, not 0, for every input ({summary}); "
                        f"value is {verb}",
                        "conservation",
                    )
                )
            return
        total = self.linear_term(net, post=True)
        q = self.query("whether the balance changes sum to zero", *(f for _, f in g), total != 0)
        if self.decide(q, verify, out) != z3.sat:
            return
        model = q.solver.model()
        net = model.eval(total, model_completion=True)
        value = _exact(net)
        shown = _signed(value) if value is not None else _z3_number(net)
        example = self.assignment(model, [total]) or "any input"  # e.g. a sum of `1 / 0`
        out.append(
            diag(
                verify.keyword_span,
                f"conservation violated in intent `{self.name}`: the balance changes "
                f"({summary}) do not always sum to 0; counterexample allowed by the guard: "
                f"{example} gives a net change of {shown}",
                "conservation",
            )
        )


def _reason(text: str, core: list[Condition]) -> str:
    """Why the conditions of an unsat core fail; decimals get the integer reading."""
    if len(core) == 1:
        reason = f"{text} is false for every value"
    else:
        reason = f"{text} contradict each other"
    if any(
        isinstance(leaf, Number) and not leaf.is_integer
        for c in core
        for comp in comparisons(c)
        for leaf in (*walk_expr(comp.left), *walk_expr(comp.right))
    ):
        reason += (
            ": every name is an integer, so a decimal can only equal a term whose value is whole"
        )
    return reason


def _binops(cond: Condition) -> Iterator[BinOp]:
    """Every operation in `cond`, iteratively (chains can be long)."""
    stack: list[Expr] = []
    for comp in comparisons(cond):
        stack.extend((comp.right, comp.left))
    while stack:
        node = stack.pop()
        if isinstance(node, BinOp):
            yield node
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, Group):
            stack.append(node.inner)


def _binops_with_premise(cond: Condition) -> Iterator[tuple[BinOp, Comparison | None]]:
    """Each operation of `cond`, with the antecedent that must hold for it to be
    evaluated at all (an implication's consequent means nothing when it is false)."""
    body = cond.body
    if not isinstance(body, Implication):
        yield from ((node, None) for node in _binops(cond))
        return
    for part, premise in ((body.antecedent, None), (body.consequent, body.antecedent)):
        alone = Condition(part, cond.start, cond.end, cond.index)
        yield from ((node, premise) for node in _binops(alone))


def _divisions_with_premise(cond: Condition) -> Iterator[tuple[BinOp, Comparison | None]]:
    return ((node, premise) for node, premise in _binops_with_premise(cond)
            if node.op in ("/", "%"))


def _has_name(expr: Expr) -> bool:
    return any(isinstance(leaf, Name) for leaf in walk_expr(expr))


def _signed(value: Rational) -> str:
    text = fraction_text(Fraction(value))
    return text if value < 0 else f"+{text}"


def _exact(value: Any) -> Fraction | None:
    """A z3 numeral as a Fraction; None when it is too long to convert or not rational."""
    if z3.is_int_value(value):
        text = value.as_string()
        return Fraction(text) if len(text) <= 1000 else None
    if z3.is_rational_value(value):
        num, den = value.numerator().as_string(), value.denominator().as_string()
        if len(num) + len(den) <= 1000:
            return Fraction(int(num), int(den))
    return None


def _z3_number(value: Any) -> str:
    exact = _exact(value)
    if exact is not None:
        return fraction_text(exact)
    if z3.is_int_value(value):
        return abbreviate(value.as_string())
    return abbreviate(str(value))


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
