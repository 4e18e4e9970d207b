"""Formatter: canonical output, idempotence on every program, comments kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.language.formatter import format_text
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
