"""Checker: each finding kind, with the solver's evidence in the message."""

from __future__ import annotations

import threading

import pytest

from aethel_lsp.language.checker import CheckCancelled, analyze, check
from aethel_lsp.language.diagnostics import Severity
from aethel_lsp.language.parser import parse
from tests.unit.aethel_support import CONFORMING, EXAMPLES, UPSTREAM, read, where


def intent(guard: str, verify: str, name: str = "t", params: str = "a: A") -> str:
    return (
        f"intent {name}({params}) {{\n"
        f"    guard {{\n        {guard}\n    }}\n"
        "    solve {\n        priority: security;\n    }\n"
        f"    verify {{\n        {verify}\n    }}\n"
        "}\n"
    )


def findings(text: str, code: str | None = None) -> list[tuple[tuple[int, int], str, str]]:
    out = [(where(d)[:2], d.code, d.message) for d in analyze(text).findings]
    return [f for f in out if code is None or f[1] == code]


@pytest.mark.parametrize("name", ["transfer.ae", "escrow_batch.ae"])
def test_valid_examples_have_no_findings(name: str) -> None:
    analysis = analyze(read(EXAMPLES / name))
    assert analysis.diagnostics == [] and analysis.valid


def test_conservation_violation_example_is_flagged_with_the_net_change() -> None:
    analysis = analyze(read(EXAMPLES / "conservation_violation.ae"))
    assert analysis.parse.diagnostics == []
    (d,) = analysis.findings
    assert d.code == "conservation" and d.severity == Severity.ERROR
    assert where(d)[:2] == (11, 5)  # the verify block
    assert "sum to +1, not 0" in d.message
    assert "sender_balance: -amount" in d.message
    assert "receiver_balance: +amount + 1" in d.message


def test_symbolic_conservation_violation_has_a_counterexample() -> None:
    text = intent(
        "amount > 0; fee >= 0; old_s == s; old_r == r;",
        "s == old_s - amount; r == old_r + amount - fee;",
    )
    ((_, _, message),) = findings(text, "conservation")
    assert "counterexample allowed by the guard" in message
    # the net change is normalised to `-fee`: amount cancels, so only fee is shown
    assert "(s: -amount, r: +amount - fee)" in message
    assert "fee = " in message and "amount = " not in message
    assert "net change of -" in message


def test_conservation_proved_under_the_guard() -> None:
    text = intent(
        "fee == 0; old_s == s; old_r == r;",
        "s == old_s - amount; r == old_r + amount + fee;",
    )
    assert findings(text) == []


def test_private_voting_double_count_is_a_conservation_finding() -> None:
    ((_, code, message),) = findings(read(UPSTREAM / "private_voting.ae"))
    assert code == "conservation"
    assert "vote_weight = 1" in message and "+2" in message


def test_vacuous_guard_names_the_contradicting_conditions() -> None:
    text = intent("a > 5;\n        a < 2;", "a > 0;")
    ((pos, code, message),) = findings(text)
    assert code == "vacuous-guard" and pos == (3, 9)
    assert "`a > 5` (line 3) and `a < 2` (line 4) contradict each other" in message


def test_single_condition_vacuous_guard() -> None:
    text = intent("a * 0 > 1;", "a > 0;")
    ((_, code, message),) = findings(text)
    assert code == "vacuous-guard" and "is false for every value" in message


def test_inconsistent_guard_and_verify() -> None:
    text = intent("a > 5;", "b == a + 1;\n        b < 3;")
    ((pos, code, message),) = findings(text)
    assert code == "inconsistent" and pos == (9, 9)
    assert "`a > 5` (line 3)" in message and "`b < 3` (line 10)" in message


def test_two_state_reading_keeps_pinned_transfers_consistent() -> None:
    """`old_x == x` in guard and `x == old_x - amount` in verify with amount > 0 is fine."""
    text = intent(
        "amount > 0; old_x == x; old_y == y;", "x == old_x - amount; y == old_y + amount;"
    )
    assert findings(text) == []


def test_implication_is_checked() -> None:
    text = intent("a > 5;", "(a > 3) ==> (b < 0);\n        b > 1;")
    assert findings(text, "inconsistent")


def test_overflow_on_literal_arithmetic() -> None:
    text = intent("a > 9223372036854775807 + 1;", "a < 3 * -3074457345618258603;")
    got = findings(text, "overflow")
    assert [f[0] for f in got] == [(3, 13), (9, 13)]
    assert "= 9223372036854775808 exceeds the signed 64-bit maximum" in got[0][2]
    assert "minimum" in got[1][2]


def test_overflow_literal_out_of_range_and_division_by_zero() -> None:
    text = intent("a > 99999999999999999999;", "a > 1 / 0;")
    got = [f[2] for f in findings(text, "overflow")]
    assert "literal 99999999999999999999 is outside the signed 64-bit range" in got[0]
    assert "division by zero" in got[1]


def test_in_range_literal_arithmetic_is_fine() -> None:
    assert findings(intent("a > 9223372036854775806 + 1;", "a > 0;"), "overflow") == []


def test_duplicate_intents_in_file_and_batch() -> None:
    text = intent("a > 0;", "a > 0;", "pay") + intent("a > 0;", "a > 0;", "pay")
    text += "atomic_batch b {\n" + intent("a > 0;", "a > 0;", "x") + intent("a > 0;", "a > 0;", "x")
    text += "}\n"
    got = findings(text, "duplicate-intent")
    assert len(got) == 2
    assert "already defined on line 1" in got[0][2] and "within a file" in got[0][2]
    assert "within atomic_batch `b`" in got[1][2]


def test_duplicate_parameter() -> None:
    got = findings(intent("a > 0;", "a > 0;", params="a: A, a: B"), "duplicate-param")
    assert len(got) == 1


def test_unknown_and_empty_blocks() -> None:
    text = (
        "intent t(a: A) {\n    guard { }\n    solve { priority: speed; }\n"
        "    verify { a > 0; }\n    ensure { a > 1; }\n}\n"
    )
    assert parse(text).diagnostics == []
    got = findings(text)
    assert [(f[0], f[1]) for f in got] == [((2, 5), "empty-block"), ((5, 5), "unknown-block")]
    assert "did you mean `verify`?" in got[1][2]


def test_decimal_literals_are_exact_rationals() -> None:
    text = intent("price >= 0.5;", "price <= 0.4;")
    assert findings(text, "inconsistent")


def test_intents_with_syntax_errors_are_not_solved() -> None:
    text = intent("a = 5;", "a < 2;")
    analysis = analyze(text)
    assert [d.code for d in analysis.parse.diagnostics] == ["foreign-assign"]
    assert analysis.findings == []


@pytest.mark.parametrize("name", CONFORMING)
def test_conforming_programs_only_get_real_findings(name: str) -> None:
    codes = {d.code for d in analyze(read(UPSTREAM / name)).findings}
    expected = {"conservation"} if name == "private_voting.ae" else set()
    assert codes == expected


def test_cancel_with_an_event_raises() -> None:
    event = threading.Event()
    event.set()
    program = parse(read(EXAMPLES / "transfer.ae")).program
    with pytest.raises(CheckCancelled):
        check(program, cancel=event)


def test_cancel_with_a_callable_stops_between_intents() -> None:
    program = parse(read(UPSTREAM / "finance.ae")).program
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CheckCancelled):
        check(program, cancel=should_stop)


def test_checks_run_concurrently_on_threads() -> None:
    texts = [read(EXAMPLES / "conservation_violation.ae"), read(UPSTREAM / "private_voting.ae")] * 3
    results: list[int] = []

    def work(text: str) -> None:
        results.append(len(analyze(text).findings))

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [1] * 6


def test_tiny_timeout_reports_unknown_or_proves() -> None:
    """A 1 ms budget must never be reported as a proof failure by mistake."""
    text = intent("a * a * a == b * b * b + 7;", "a * b > 3;")
    codes = {d.code for d in analyze(text, timeout_ms=1).findings}
    assert codes <= {"solver-unknown", "inconsistent"}
