"""Issue 18: the checker says what it proves and proves what it says.

Each numbered part of the issue has a program the checker must flag and a valid twin
that must stay valid (no findings), so a check that flags everything fails too.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import z3

from aethel_lsp.language.ast import Comparison
from aethel_lsp.language.check_options import CheckOptions
from aethel_lsp.language.checker import analyze
from aethel_lsp.language.diagnostics import Severity
from aethel_lsp.language.linear import balance_change, linearize
from aethel_lsp.language.numbers import integer_divide, integer_remainder, literal_value
from aethel_lsp.language.parser import MAX_NESTING, parse
from aethel_lsp.language.prover import BudgetSpent, SolverBudget
from tests.unit.aethel_support import CONFORMING, EXAMPLES, UPSTREAM, read

TRANSFER_GUARD = "amount > 0; old_s == s; old_r == r; old_t == t;"


def intent(guard: str, verify: str, name: str = "t", params: str = "a: A") -> str:
    return (
        f"intent {name}({params}) {{\n"
        f"    guard {{\n        {guard}\n    }}\n"
        "    solve {\n        priority: security;\n    }\n"
        f"    verify {{\n        {verify}\n    }}\n"
        "}\n"
    )


def codes(text: str, options: CheckOptions | None = None) -> list[str]:
    return [d.code for d in analyze(text, options=options).diagnostics]


def messages(text: str, code: str, options: CheckOptions | None = None) -> list[str]:
    return [d.message for d in analyze(text, options=options).diagnostics if d.code == code]


# 1. integer semantics, whatever literals appear ------------------------------------


def test_a_decimal_elsewhere_does_not_make_an_impossible_integer_guard_possible() -> None:
    decimal_verify = "fee >= amount * 0.05;"
    assert codes(intent("amount > 0; amount < 1;", decimal_verify)) == ["vacuous-guard"]
    assert codes(intent("amount > 0; amount < 2;", decimal_verify)) == []


def test_a_decimal_that_cannot_be_an_integer_is_explained() -> None:
    (message,) = messages(intent("amount == 0.5;", "amount > 0;"), "vacuous-guard")
    assert "every name is an integer" in message
    assert codes(intent("amount == 2.0;", "amount > 0;")) == []


def test_integer_division_rounding_leak_is_a_conservation_violation() -> None:
    leak = intent(
        TRANSFER_GUARD,
        "s == old_s - amount; r == old_r + amount * 95 / 100; t == old_t + amount * 5 / 100;"
        "\n        rate >= 0.5;",
    )
    (message,) = messages(leak, "conservation")
    assert "counterexample allowed by the guard" in message
    exact = intent(
        TRANSFER_GUARD,
        "s == old_s - amount; r == old_r + amount - amount * 5 / 100; "
        "t == old_t + amount * 5 / 100;\n        rate >= 0.5;",
    )
    assert codes(exact) == []


def test_decimal_rates_are_exact_rationals_without_fake_counterexamples() -> None:
    valid = intent(
        TRANSFER_GUARD,
        "s == old_s - amount; r == old_r + amount * 0.95; t == old_t + amount * 0.05;",
    )
    assert codes(valid) == []
    leaky = intent(
        TRANSFER_GUARD,
        "s == old_s - amount; r == old_r + amount * 0.95; t == old_t + amount * 0.06;",
    )
    (message,) = messages(leaky, "conservation")
    assert "amount = 0.5" not in message and "amount = " in message


def test_remainder_beside_a_decimal_still_checks_conservation() -> None:
    broken = intent(
        "amount > 0; old_s == s; old_r == r;",
        "s == old_s - amount; r == old_r + amount + 1000; fee == amount % 7; rate >= 0.5;",
    )
    (message,) = messages(broken, "conservation")
    assert "sum to +1000, not 0" in message
    fixed = broken.replace(" + 1000;", ";")
    assert codes(fixed) == []


def test_integer_division_of_a_decimal_term_is_a_clear_error() -> None:
    (d,) = analyze(intent("amount > 0;", "share == amount / 0.5;")).diagnostics
    assert d.code == "decimal-division" and d.severity == Severity.ERROR
    assert "`0.5` is not an integer term" in d.message and "integer division" in d.message
    assert codes(intent("amount > 0;", "share == amount / 2;")) == []


PAIRS = [(a, b) for a, b in itertools.product((-7, -6, 0, 6, 7), (-3, -2, 2, 3))]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_division_and_remainder_mean_what_z3_div_and_mod_mean(a: int, b: int) -> None:
    """The literal evaluator, the checker's solver terms and the SPEC agree (z3 Int)."""
    want_q = z3.simplify(z3.IntVal(a) / z3.IntVal(b)).as_long()
    want_r = z3.simplify(z3.IntVal(a) % z3.IntVal(b)).as_long()
    assert (integer_divide(a, b), integer_remainder(a, b)) == (want_q, want_r)
    exact = intent(f"q == {a} / {b}; r == {a} % {b};", f"q == {want_q}; r == {want_r};")
    assert codes(exact) == []
    assert codes(exact.replace(f"q == {want_q};", f"q == {want_q + 1};")) == ["inconsistent"]


def test_literal_values_are_exact() -> None:
    assert literal_value("0.05") == Fraction(1, 20)
    assert literal_value("-3") == -3
    assert literal_value("2.0") == 2


# 2. conservation from the arithmetic meaning -------------------------------------

CONSERVING = [
    "s == old_s - amount; r == old_r + amount;",
    "s == (old_s - amount); r == (old_r + amount);",
    "s == old_s - amount; r == amount + old_r;",
    "old_s - s == amount; r - amount == old_r;",
    "s + amount == old_s; old_r + amount == r;",
    "s == old_s - (amount + fee); r == old_r + amount; t == fee + old_t;",
    "2 * s == 2 * old_s - 2 * amount; r == old_r + amount;",
]


@pytest.mark.parametrize("verify", CONSERVING)
def test_every_form_of_a_conserving_transfer_is_valid(verify: str) -> None:
    assert codes(intent(TRANSFER_GUARD, verify)) == []


@pytest.mark.parametrize("verify", CONSERVING)
def test_every_form_with_one_unit_created_is_flagged(verify: str) -> None:
    broken = intent(
        TRANSFER_GUARD,
        verify.replace("r == old_r + amount", "r == old_r + amount + 1")
        .replace("r - amount == old_r", "r - amount - 1 == old_r")
        .replace("old_r + amount == r", "old_r + amount + 1 == r")
        .replace("r == (old_r + amount)", "r == (old_r + amount + 1)")
        .replace("r == amount + old_r", "r == amount + 1 + old_r"),
    )
    (message,) = messages(broken, "conservation")
    assert "sum to +1, not 0, for every input" in message


def test_upstream_printer_form_is_read_as_a_change() -> None:
    """`x == (old_x - e)` used to be invisible: a lone withdrawal destroys value."""
    (message,) = messages(intent(TRANSFER_GUARD, "s == (old_s - amount);"), "conservation")
    assert "s: -amount" in message and "net change of -" in message


def test_the_net_change_is_a_solver_term() -> None:
    """Symbolic amounts that cancel only under the guard are proven, not pattern-matched."""
    text = intent(
        "amount == 2 * half; old_s == s; old_r == r;",
        "s == old_s - amount; r == old_r + half + half;",
    )
    assert codes(text) == []
    (message,) = messages(text.replace("half + half", "half + half / 2"), "conservation")
    assert "counterexample allowed by the guard" in message and "half = " in message


def test_balance_change_normal_form() -> None:
    def change(line: str) -> str | None:
        body = parse(intent("old_x == x;", line)).program.intents()[0].block("verify")
        assert body is not None
        cond = body.conditions[0]
        assert isinstance(cond.body, Comparison)
        found = balance_change(cond.body, cond, {"x"})
        return None if found is None else found.describe()

    assert change("x == (old_x - e);") == "x: -e"
    assert change("x == e + old_x;") == "x: +e"
    assert change("old_x - x == e;") == "x: -e"
    assert change("x == old_x - 0.05 * e + 1;") == "x: -0.05 * e + 1"
    assert change("x == old_x - old_x;") == "x: -old_x"
    assert change("x == old_x;") == "x: 0"
    assert change("x == old_x + a * b;") == "x: +a * b"
    assert change("x >= old_x - e;") is None
    assert change("x == 0;") is None  # no old_x on the line: not a balance change
    assert change("x == old_x + x * rate;") is None  # x on both sides


def test_linearize_ignores_parentheses_and_order() -> None:
    def form(text: str) -> tuple[dict[str, Fraction], Fraction]:
        result = parse(intent(f"{text} > 0;", "a > 0;")).program.intents()[0].block("guard")
        assert result is not None
        comp = result.conditions[0].body
        assert isinstance(comp, Comparison)
        lin = linearize(comp.left)
        assert lin is not None
        return lin.coefficients, lin.constant

    assert form("(a - b) + 3") == form("3 - (b - a)") == form("a + (3 - b)")
    assert form("2 * (a + 1)") == ({"a": Fraction(2)}, Fraction(2))


# 3. division by zero ------------------------------------------------------------


def test_division_by_a_term_that_can_be_zero_has_a_counterexample() -> None:
    (d,) = analyze(intent("amount > 0;", "share == amount / n;")).diagnostics
    assert d.code == "division-by-zero" and d.severity == Severity.ERROR
    assert "counterexample: n = 0" in d.message and "`n != 0;`" in d.message
    assert codes(intent("amount > 0; n > 0;", "share == amount / n;")) == []


def test_remainder_and_compound_divisors() -> None:
    (message,) = messages(intent("a >= b;", "r == x % (a - b);"), "division-by-zero")
    assert "remainder" in message and "a = " in message and "b = " in message
    assert codes(intent("a > b;", "r == x % (a - b);")) == []


def test_verify_conditions_can_rule_out_a_zero_divisor() -> None:
    """prediction_market.ae style: the divisor is positive after the intent."""
    assert codes(intent("pool > 0;", "n > 0; ratio == pool / n;")) == []
    assert codes(intent("pool > 0;", "n >= 0; ratio == pool / n;")) == ["division-by-zero"]


def test_division_by_a_literal_zero() -> None:
    (message,) = messages(intent("amount > 0;", "share == amount / 0;"), "division-by-zero")
    assert "is 0 for every input" in message
    assert codes(intent("amount > 0;", "share == amount / 1;")) == []


# 4. budgets and strict ------------------------------------------------------------


def many_intents(count: int) -> str:
    body = read(EXAMPLES / "transfer.ae")
    return "\n".join(body.replace("intent transfer", f"intent transfer_{k}") for k in range(count))


def test_a_spent_file_budget_is_not_proven_a_warning_by_default() -> None:
    text = many_intents(40)
    analysis = analyze(text, options=CheckOptions(file_budget_ms=1))
    spent = [d for d in analysis.findings if d.code == "solver-budget"]
    assert spent and all(d.severity == Severity.WARNING for d in spent)
    assert "not proven" in spent[-1].message and "checker.fileBudgetMs" in spent[-1].message
    assert analysis.valid and analysis.not_proven == len(spent)
    assert analyze(text).findings == []  # the default budget checks all 40


def test_strict_makes_not_proven_an_error() -> None:
    analysis = analyze(many_intents(40), options=CheckOptions(file_budget_ms=1, strict=True))
    spent = [d for d in analysis.findings if d.code == "solver-budget"]
    assert spent and all(d.severity == Severity.ERROR for d in spent)
    assert not analysis.valid
    strict_valid = analyze(read(EXAMPLES / "transfer.ae"), options=CheckOptions(strict=True))
    assert strict_valid.valid and strict_valid.findings == []


def test_budget_caps_each_query_and_names_the_scope() -> None:
    now = [100.0]
    options = CheckOptions(timeout_ms=2000, intent_budget_ms=3000, file_budget_ms=5000)
    budget = SolverBudget(options, clock=lambda: now[0])
    assert budget.query_ms("q") == (2000, False)
    now[0] += 2.5  # 500 ms left for the intent
    assert budget.query_ms("q") == (500, True)
    now[0] += 0.5
    with pytest.raises(BudgetSpent) as spent:
        budget.query_ms("whether the guard can hold")
    assert spent.value.scope == "intent" and spent.value.what == "whether the guard can hold"
    budget.start_intent()
    assert budget.query_ms("q") == (2000, False)  # 2000 ms left of the file
    now[0] += 1.5
    assert budget.query_ms("q") == (500, True)
    now[0] += 0.5
    with pytest.raises(BudgetSpent) as spent:
        budget.query_ms("q")
    assert spent.value.scope == "file" and budget.file_spent


# 5. numbers of any length, nesting ---------------------------------------------


def test_numbers_beyond_pythons_digit_limit_do_not_crash() -> None:
    huge = "9" * 5000
    found = analyze(intent(f"a > {huge};", "a > 0;")).findings
    overflow = [d for d in found if d.code == "overflow"]
    assert len(overflow) == 1 and "(5000 digits) is outside the signed 64-bit range" in (
        overflow[0].message
    )
    assert len(overflow[0].message) < 300
    decimal = analyze(intent(f"a > 0.{huge};", "a > 0;")).findings
    assert [d.code for d in decimal if d.severity == Severity.ERROR] == ["overflow"]
    assert codes(intent("a > 9223372036854775807 - 1;", "a > 0;")) == []
    assert codes(intent("a < 9223372036854775807;", "a > 0;")) == []


def test_huge_model_values_are_printed_short() -> None:
    """A counterexample value of more than 4,300 digits (z3 has no limit) is abbreviated."""
    big = "9" * 900
    text = intent(
        f"old_s == s; old_r == r; b == {big} * {big} * {big} * {big} * {big};",
        "s == old_s - amount; r == old_r + amount + b;",
    )
    (message,) = messages(text, "conservation")
    assert "digits)" in message and len(message) < 1000


def test_nesting_beyond_the_limit_is_one_clear_diagnostic() -> None:
    deep = "(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1)
    diagnostics = analyze(intent(f"{deep} > 0;", "a > 0;")).diagnostics
    assert [d.code for d in diagnostics] == ["too-deep"]
    assert f"more than {MAX_NESTING} levels" in diagnostics[0].message
    limit = "(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    assert codes(intent(f"{limit} > 0;", "a > 0;")) == []


# 6. optional stricter checks, off by default -------------------------------------

IMPLIED = CheckOptions(verify_implied=True)
OVERFLOW = CheckOptions(symbolic_overflow=True)


def test_verify_implied_flags_claims_the_guard_does_not_guarantee() -> None:
    guard = "amount > 0; s >= amount; old_s == s; old_r == r;"
    updates = "s == old_s - amount; r == old_r + amount;"
    implied = intent(guard, f"{updates} s >= 0;")
    assert codes(implied, IMPLIED) == []
    claim = intent(guard, f"{updates} s >= 1;")
    assert codes(claim) == []  # off by default
    (message,) = messages(claim, "not-implied", IMPLIED)
    assert "`s >= 1` does not follow from the guard" in message and "counterexample" in message


def test_symbolic_overflow_flags_arithmetic_that_can_leave_64_bits() -> None:
    risky = intent("a > 0; b > 0;", "a * b > 0;")
    assert codes(risky) == []  # off by default
    (message,) = messages(risky, "symbolic-overflow", OVERFLOW)
    assert "`a * b` can reach" in message and "maximum 9223372036854775807" in message
    assert codes(intent("a > 0; b > 0; a < 1000; b < 1000;", "a * b > 0;"), OVERFLOW) == []


def test_optional_checks_keep_the_examples_valid() -> None:
    both = CheckOptions(verify_implied=True, symbolic_overflow=True)
    for name in ("transfer.ae", "escrow_batch.ae"):
        assert analyze(read(EXAMPLES / name), options=both).findings == []


# the 14 conforming upstream programs ------------------------------------------------


@pytest.mark.parametrize("name", CONFORMING)
def test_conforming_upstream_programs_keep_their_verdicts(name: str) -> None:
    found = {d.code for d in analyze(read(UPSTREAM / name)).findings}
    assert found == ({"conservation"} if name == "private_voting.ae" else set())
