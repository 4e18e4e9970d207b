"""Parser: every shared program, targeted broken inputs (recovery, spans, messages)."""

from __future__ import annotations

import pytest

from aethel_lsp.language.ast import BinOp, Comparison, Group, Implication, Intent, Name, Number
from aethel_lsp.language.lexer import tokenize
from aethel_lsp.language.parser import parse
from tests.unit.aethel_support import CONFORMING, EXAMPLES, UPSTREAM, read, where

VALID = """\
intent t(a: A, secret b: B, external c: C) {
    guard {
        a > 0;
    }
    solve {
        priority: security;
    }
    verify {
        b == a + 1;
    }
}
"""


def test_sources_list_names_fourteen_conforming_programs() -> None:
    assert len(CONFORMING) == 14


@pytest.mark.parametrize("name", CONFORMING)
def test_conforming_upstream_programs_parse_cleanly(name: str) -> None:
    result = parse(read(UPSTREAM / name))
    assert result.diagnostics == []
    assert result.program.intents()


@pytest.mark.parametrize("name", ["transfer.ae", "escrow_batch.ae", "conservation_violation.ae"])
def test_examples_parse_cleanly(name: str) -> None:
    assert parse(read(EXAMPLES / name)).diagnostics == []


def test_escrow_batch_tree() -> None:
    program = parse(read(EXAMPLES / "escrow_batch.ae")).program
    (batch,) = program.items
    assert not isinstance(batch, Intent)
    assert batch.name is not None and batch.name.name == "escrow"
    deposit, release = batch.intents
    assert deposit.batch == "escrow"
    assert [p.name.name for p in deposit.params] == ["buyer", "amount"]
    assert deposit.params[1].secret and not deposit.params[1].external
    assert release.params[1].external
    verify = release.block("verify")
    assert verify is not None and verify.conditions[0].secret
    solve = release.block("solve")
    assert solve is not None
    assert [(s.key.name, s.value.name if s.value else None) for s in solve.settings] == [
        ("priority", "security"),
        ("oracle", "courier_api"),
    ]


def test_drift_example_diagnostics() -> None:
    result = parse(read(EXAMPLES / "drift.ae"))
    got = [(where(d)[:2], d.code) for d in result.diagnostics]
    assert got == [
        ((1, 1), "foreign-comment"),
        ((4, 9), "foreign-member"),
        ((5, 16), "foreign-assign"),
        ((5, 18), "foreign-member"),
        ((11, 9), "foreign-if"),
    ]
    messages = [d.message for d in result.diagnostics]
    assert "use `#`" in messages[0] or "with `#`" in messages[0]
    assert "`order_paid`" in messages[1]
    assert "`==`" in messages[2]
    assert "==>" in messages[4]
    # partial tree: the intent and its blocks are still there
    (intent,) = result.program.intents()
    assert intent.display_name == "refund"
    verify = intent.block("verify")
    assert verify is not None and len(verify.conditions) == 1  # the condition inside `if`


def test_crop_insurance_web_conditions_in_solve_and_missing_verify() -> None:
    result = parse(read(UPSTREAM / "crop_insurance_web.ae"))
    codes = [d.code for d in result.diagnostics]
    assert codes.count("foreign-comment") == 2
    assert codes.count("condition-in-solve") == 8
    missing = [d for d in result.diagnostics if "has no `verify` block" in d.message]
    assert [where(d)[:2] for d in missing] == [(4, 8), (26, 8), (43, 8)]
    first_solve = next(d for d in result.diagnostics if d.code == "condition-in-solve")
    assert where(first_solve) == (21, 9, 21, 61)
    assert "move this condition to `verify`" in first_solve.message
    assert len(result.program.intents()) == 3


def test_weather_insurance_if_inside_verify() -> None:
    result = parse(read(UPSTREAM / "weather_insurance.ae"))
    (diag,) = result.diagnostics
    assert diag.code == "foreign-if"
    assert where(diag) == (35, 9, 35, 46)  # `if (rainfall_mm < rainfall_threshold)`
    verify = result.program.intents()[0].block("verify")
    assert verify is not None and len(verify.conditions) == 5


def test_defi_liquidation_conservation_assignments() -> None:
    result = parse(read(UPSTREAM / "defi_liquidation_conservation.ae"))
    assert [(where(d)[:2], d.code) for d in result.diagnostics] == [
        ((22, 26), "foreign-assign"),
        ((23, 20), "foreign-assign"),
    ]


def test_payroll_other_dialect() -> None:
    result = parse(read(UPSTREAM / "payroll.ae"))
    codes = [d.code for d in result.diagnostics]
    assert codes[0] == "syntax"
    assert "outside an intent" in result.diagnostics[0].message
    assert codes.count("foreign-let") == 7
    assert "foreign-statement" in codes  # assert, prove
    assert codes[-1] == "foreign-return"
    assert where(result.diagnostics[1])[:2] == (7, 5)
    assert result.program.items == []


# ------------------------------------------------------------------ targeted inputs


def messages(text: str) -> list[tuple[tuple[int, int], str, str]]:
    return [(where(d)[:2], d.code, d.message) for d in parse(text).diagnostics]


def block_text(body: str, kind: str = "guard") -> str:
    blocks = {"guard": "a > 0;", "solve": "priority: speed;", "verify": "a > 0;"}
    blocks[kind] = body
    return (
        "intent t(a: A) {\n"
        f"    guard {{ {blocks['guard']} }}\n"
        f"    solve {{ {blocks['solve']} }}\n"
        f"    verify {{ {blocks['verify']} }}\n"
        "}\n"
    )


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ("a && b > 0;", "foreign-logic", "its own"),
        ("a > 0 || b > 0;", "foreign-logic", "no disjunction"),
        ("a > 0 and b > 0;", "foreign-logic", "its own"),
        ("!(a > 0);", "foreign-not", "negate the comparison"),
        ("not a > 0;", "foreign-not", "negate the comparison"),
        ("let x = 3;", "foreign-let", "no variables"),
        ("assert a > 0;", "foreign-statement", "write the condition itself"),
        ("ensure a > 0;", "foreign-statement", "write the condition itself"),
        ("prove a > 0;", "foreign-statement", "every `verify` condition is checked"),
        ('status == "done";', "foreign-string", "strings are not Aethel"),
        ("balance(a) > 0;", "foreign-call", "function calls are not Aethel"),
        ("a.b > 0;", "foreign-member", "`a_b`"),
        ("a = 1;", "foreign-assign", "compare with `==`"),
        ("if (a > 0) { b > 0; }", "foreign-if", "implication"),
        ("return a;", "foreign-return", "returns nothing"),
    ],
)
def test_foreign_constructs_explain_the_aethel_way(body: str, code: str, needle: str) -> None:
    found = messages(block_text(body))
    assert found, body
    (pos, got_code, message) = found[0]
    assert got_code == code
    assert needle in message
    assert pos[0] == 2


def test_foreign_slash_comment_range() -> None:
    text = "intent t(a: A) { // hi\n guard { a > 0; } solve { p: q; } verify { a > 0; } }"
    (d,) = parse(text).diagnostics
    assert d.code == "foreign-comment" and where(d) == (1, 18, 1, 20)


def test_several_errors_are_reported_and_parsing_continues() -> None:
    text = (
        "intent broken(a: A {\n"
        "    guard { x > ; y = 3 && z > 1; }\n"
        "    solve { priority speed; }\n"
        '    verify { a.b > f(3); "s" == 1 }\n'
        "}\n"
        "intent ok(a: A) { guard { a > 0; } solve { p: q; } verify { a > 0; } }\n"
    )
    result = parse(text)
    got = [(where(d)[:2], d.code) for d in result.diagnostics]
    assert got == [
        ((1, 20), "syntax"),
        ((2, 17), "syntax"),
        ((2, 21), "foreign-assign"),
        ((2, 25), "foreign-logic"),
        ((3, 13), "syntax"),
        ((4, 14), "foreign-member"),
        ((4, 20), "foreign-call"),
        ((4, 26), "foreign-string"),
        ((4, 33), "syntax"),
    ]
    assert result.diagnostics[0].message == "expected `)` to close the parameter list, found `{`"
    assert result.diagnostics[1].message == "expected a name, a number or `(`, found `;`"
    assert "`priority: speed;`" in result.diagnostics[4].message
    assert result.diagnostics[-1].message == "expected `;` after the condition, found `}`"
    assert [i.display_name for i in result.program.intents()] == ["broken", "ok"]


def test_missing_semicolon_points_at_the_end_of_the_condition() -> None:
    (d,) = parse(block_text("a > 0 b > 1;")).diagnostics
    assert d.message == "expected `;` after the condition, found `b`"
    assert where(d) == (2, 17, 2, 18)  # the `0`


def test_partial_tree_while_typing() -> None:
    text = VALID + "\nintent next(x: X) {\n    guard {\n        x >\n"
    result = parse(text)
    assert [i.display_name for i in result.program.intents()] == ["t", "next"]
    assert result.diagnostics
    last = result.program.intents()[1]
    assert [p.name.name for p in last.params] == ["x"]
    assert last.blocks[0].kind == "guard" and not last.blocks[0].closed


def test_unclosed_intent_is_closed_by_the_next_intent() -> None:
    text = "intent a(x: X) {\n    guard { x > 0; }\n" + VALID
    result = parse(text)
    assert [i.display_name for i in result.program.intents()] == ["a", "t"]
    first = result.diagnostics[0]
    assert "is never closed" in first.message and where(first)[:2] == (1, 16)


def test_block_order_and_missing_blocks() -> None:
    text = "intent t(a: A) {\n verify { a > 0; }\n guard { a > 0; }\n}\n"
    got = messages(text)
    assert any("out of order" in m for _, _, m in got)
    assert any("has no `solve` block" in m for _, _, m in got)


def test_param_errors() -> None:
    got = messages("intent t(a, b: B,) { guard { a > 0; } solve { p: q; } verify { a > 0; } }")
    assert got[0][2].startswith("expected `:` and a type after parameter `a`")
    assert got[1][2] == "trailing `,` before `)`: remove it"


def test_empty_file_and_garbage() -> None:
    assert "at least one intent" in messages("")[0][2]
    got = messages(
        "hello world\nintent t(a: A) { guard { a > 0; } solve { p: q; } verify { a > 0; } }"
    )
    assert got == [((1, 1), "syntax", "expected `intent` or `atomic_batch`, found `hello`")]


def test_chained_comparison() -> None:
    (d,) = parse(block_text("0 < a < 5;")).diagnostics
    assert "exactly one comparison" in d.message


# ------------------------------------------------------------------ tree and spans


def test_spans_are_exact() -> None:
    program = parse(VALID).program
    (intent,) = program.intents()
    assert intent.name is not None
    r = intent.name.span.range
    assert (r.start.line, r.start.column, r.end.line, r.end.column) == (0, 7, 0, 8)
    assert intent.name.span.start == 7 and intent.name.span.end == 8
    verify = intent.block("verify")
    assert verify is not None
    cond = verify.conditions[0]
    assert VALID[cond.span.start : cond.span.end] == "b == a + 1"
    assert (cond.span.start_line, cond.span.start_column) == (8, 8)
    assert VALID[intent.span.start : intent.span.end] == VALID.rstrip("\n")
    assert VALID[verify.span.start : verify.span.end].startswith("verify {")


def test_expression_precedence_and_negative_numbers() -> None:
    (intent,) = parse(block_text("a - -3 * (b + 2) % 4 >= 0;")).program.intents()
    guard = intent.block("guard")
    assert guard is not None
    comp = guard.conditions[0].body
    assert isinstance(comp, Comparison) and comp.op == ">="
    left = comp.left
    assert isinstance(left, BinOp) and left.op == "-"
    assert isinstance(left.left, Name)
    mod = left.right
    assert isinstance(mod, BinOp) and mod.op == "%"
    mul = mod.left
    assert isinstance(mul, BinOp) and mul.op == "*"
    assert isinstance(mul.left, Number) and mul.left.text == "-3"
    assert isinstance(mul.right, Group)


def test_implication_extension() -> None:
    result = parse(block_text("(a > b) ==> (c >= d + 1);", "verify"))
    assert result.diagnostics == []
    verify = result.program.intents()[0].block("verify")
    assert verify is not None
    body = verify.conditions[0].body
    assert isinstance(body, Implication)
    assert body.antecedent.op == ">" and body.consequent.op == ">="


def test_implication_needs_parentheses() -> None:
    got = messages(block_text("a > b ==> c > d;"))
    assert "wrap the left side of `==>` in parentheses" in got[0][2]


def test_parenthesised_expression_is_not_an_implication() -> None:
    assert parse(block_text("(a + b) * 2 > c;")).diagnostics == []


def test_lexer_keeps_comments_and_keywords() -> None:
    tokens = tokenize("intent x # note\n// foreign\n/* block */ guard")
    assert tokens.kinds == ["intent", "ident", "guard", "eof"]
    assert tokens.comments == [(9, 15)]
    assert [m for *_, m in tokens.foreign_comments] == ["//", "/*"]


def test_lexer_trailing_comment_without_newline() -> None:
    tokens = tokenize("intent x\n# last ❌")
    assert tokens.kinds == ["intent", "ident", "eof"]
    assert tokens.comments == [(9, 17)]


def test_large_file_parses_within_a_generous_bound() -> None:
    """Functional bound only; the real measurement is bench/bench_aethel_parse.py."""
    import time

    text = "\n".join(VALID.replace("intent t", f"intent t{i}") for i in range(1800))
    start = time.perf_counter()
    result = parse(text)
    elapsed = time.perf_counter() - start
    assert len(result.program.intents()) == 1800 and result.diagnostics == []
    assert elapsed < 5.0


def test_every_prefix_and_token_deletion_parses_without_crashing() -> None:
    """Robustness while typing: no exception, spans stay inside the text."""
    import random

    for path in (EXAMPLES / "escrow_batch.ae", UPSTREAM / "payroll.ae"):
        text = read(path)
        for cut in range(0, len(text), 3):
            prefix = text[:cut]
            for d in parse(prefix).diagnostics:
                assert 0 <= d.range.start.offset <= d.range.end.offset <= len(prefix)
        rng = random.Random(6)
        tokens = tokenize(text)
        for _ in range(150):
            k = rng.randrange(len(tokens) - 1)
            mutated = text[: tokens.starts[k]] + text[tokens.ends[k] :]
            parse(mutated)


def test_fast_path_builds_the_same_tree_as_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aethel_lsp.language import parser as parser_module

    texts = [read(p) for p in sorted(EXAMPLES.glob("*.ae")) + sorted(UPSTREAM.glob("*.ae"))]
    texts.append(block_text("a > 0; b == 1 - c; 3 <= d + 4; e != f - -2;"))
    fast = [parse(t) for t in texts]
    monkeypatch.setattr(parser_module._Parser, "simple_condition", lambda self, out: False)
    slow = [parse(t) for t in texts]
    for a, b in zip(fast, slow, strict=True):
        assert a.program.items == b.program.items
        assert a.diagnostics == b.diagnostics


def apply_fixes(text: str) -> str:
    fixes = [d.fix for d in parse(text).diagnostics if d.fix is not None]
    for fix in sorted(fixes, key=lambda f: f.range.start.offset, reverse=True):
        text = text[: fix.range.start.offset] + fix.new_text + text[fix.range.end.offset :]
    return text


def test_quick_fixes_repair_mechanical_mistakes() -> None:
    text = (
        "// transfer\n"
        "intent t(a: A, b: B,) {\n"
        "    guard { a = 1 && order.paid => 2; assert b > 0; c > 1 }\n"
        "    solve { priority speed; }\n"
        "    verify { b == a + 1; }\n"
        "}\n"
    )
    diagnostics = parse(text).diagnostics
    assert len(diagnostics) == 9
    assert all(d.fix is not None for d in diagnostics)
    fixed = apply_fixes(text)
    assert parse(fixed).diagnostics == []
    assert "# transfer" in fixed and "a == 1 ; order_paid >= 2; b > 0; c > 1;" in fixed
    assert "priority: speed;" in fixed and "b: B)" in fixed


def test_fixes_in_json_and_absent_where_no_mechanical_fix_exists() -> None:
    (d,) = parse(block_text("a > 0 || b > 0;")).diagnostics
    assert d.fix is None and "fix" not in d.to_json()
    (d,) = parse(block_text("a = 0;")).diagnostics
    assert d.to_json()["fix"] == {"title": "Replace `=` with `==`", "newText": "=="}
