"""Formatter: canonical output, idempotence on every program, comments kept."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aethel_lsp.language.formatter import format_text
from aethel_lsp.language.lexer import tokenize
from aethel_lsp.language.parser import parse
from tests.unit.aethel_support import ALL_PROGRAMS, EXAMPLES, read


def _strip_ws(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("path", ALL_PROGRAMS, ids=lambda p: p.name)
def test_idempotent_and_faithful_on_every_program(path: Path) -> None:
    source = read(path)
    once = format_text(source)
    if not parse(source).ok:
        assert once is None
        return
    assert once is not None
    assert format_text(once) == once
    before, after = parse(source).program, parse(once).program
    assert [c.text for c in after.comments] == [c.text for c in before.comments]
    assert parse(once).diagnostics == []
    # only whitespace changed (blank-line and spacing normalisation)
    assert _strip_ws(once) == _strip_ws(source)


def test_examples_are_already_canonical() -> None:
    for name in ("transfer.ae", "escrow_batch.ae", "conservation_violation.ae"):
        source = read(EXAMPLES / name)
        assert format_text(source) == source + ("" if source.endswith("\n") else "\n")


MESSY = """\
# header


intent   t( a:A,secret  b : B ,external c:C){guard{a>0;   # why
old_x==x;

   # own line
   (a>1)==>(b<=-2);}
solve{priority:security;}
  verify{ x==old_x-(a+b)*2%3 ; } }
atomic_batch  bb { intent u(){ guard { a>0; } solve { p:q; } verify { a>0; } } }
# trailer
"""

CANONICAL = """\
# header

intent t(a: A, secret b: B, external c: C) {
    guard {
        a > 0;  # why
        old_x == x;

        # own line
        (a > 1) ==> (b <= -2);
    }
    solve {
        priority: security;
    }
    verify {
        x == old_x - (a + b) * 2 % 3;
    }
}

atomic_batch bb {
    intent u() {
        guard {
            a > 0;
        }
        solve {
            p: q;
        }
        verify {
            a > 0;
        }
    }
}
# trailer
"""


def test_messy_input_becomes_canonical() -> None:
    assert format_text(MESSY) == CANONICAL
    assert format_text(CANONICAL) == CANONICAL


def test_long_or_commented_parameter_lists_go_one_per_line() -> None:
    params = ", ".join(f"parameter_number_{i}: Balance" for i in range(5))
    text = f"intent t({params}) {{ guard {{ a > 0; }} solve {{ p: q; }} verify {{ a > 0; }} }}"
    out = format_text(text)
    assert out is not None
    assert out.splitlines()[:3] == [
        "intent t(",
        "    parameter_number_0: Balance,",
        "    parameter_number_1: Balance,",
    ]
    assert "    parameter_number_4: Balance\n) {" in out
    assert format_text(out) == out


def test_syntax_errors_are_not_formatted() -> None:
    assert format_text("intent t(a: A) { guard { a = 1; } }") is None


def _random_program(rng: random.Random) -> str:
    """A valid program with comments, blank lines and odd spacing in random places."""

    def gap() -> str:
        return rng.choice([" ", "", "\n", "\n\n", "  # c\n", "\n# own\n", "\t"])

    def expr(depth: int = 0) -> str:
        r = rng.random()
        if depth > 2 or r < 0.5:
            return rng.choice(["a", "b", "old_a", "7", "-3", "x_1"])
        if r < 0.8:
            return (
                f"{expr(depth + 1)}{rng.choice(['', ' '])}{rng.choice('+-*/%')} {expr(depth + 1)}"
            )
        return f"({expr(depth + 1)})"

    def cond() -> str:
        text = f"{expr()} {rng.choice(['==', '!=', '<', '<=', '>', '>='])} {expr()}"
        if rng.random() < 0.1:
            text = f"({text}) ==> ({expr()} > {expr()})"
        return ("secret " if rng.random() < 0.1 else "") + text

    def intent(name: str) -> str:
        params = ", ".join(
            f"{'secret ' if rng.random() < 0.2 else ''}p{i}:{rng.choice([' ', ''])}T"
            for i in range(rng.randrange(0, 4))
        )
        guard = "".join(f"{gap()}{cond()};" for _ in range(rng.randrange(1, 4)))
        solve = "".join(f"{gap()}k{i}: v{i};" for i in range(rng.randrange(1, 3)))
        verify = "".join(f"{gap()}{cond()};" for _ in range(rng.randrange(1, 4)))
        return (
            f"{gap()}intent {name}({params}){gap()}{{{gap()}guard{{{guard}{gap()}}}{gap()}"
            f"solve {{{solve}}}{gap()}verify{{{verify}{gap()}}}{gap()}}}"
        )

    items = []
    for k in range(rng.randrange(1, 3)):
        if rng.random() < 0.3:
            body = "".join(intent(f"i{k}_{j}") for j in range(2))
            items.append(f"atomic_batch b{k} {{{body}{gap()}}}")
        else:
            items.append(intent(f"i{k}"))
    return "".join(items) + gap()


def test_property_idempotent_and_lossless_on_random_programs() -> None:
    rng = random.Random(6)
    for _ in range(300):
        text = _random_program(rng)
        assert parse(text).ok, text
        once = format_text(text)
        assert once is not None
        assert format_text(once) == once, text
        before, after = tokenize(text), tokenize(once)
        assert after.texts == before.texts  # same tokens, in order
        comments_before = sorted(text[s:e].rstrip() for s, e in before.comments)
        assert sorted(once[s:e] for s, e in after.comments) == comments_before
