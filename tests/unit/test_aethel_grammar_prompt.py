"""Prompt material for generation and extraction of contracts from model answers."""

from __future__ import annotations

import pytest

from aethel_lsp.language.checker import analyze
from aethel_lsp.language.grammar_prompt import (
    AETHEL_FEW_SHOT,
    AETHEL_GRAMMAR_SUMMARY,
    extract_aethel,
)


def test_few_shot_is_valid_and_proved() -> None:
    analysis = analyze(AETHEL_FEW_SHOT)
    assert analysis.diagnostics == []


def test_summary_is_compact_and_names_the_foreign_constructs() -> None:
    assert len(AETHEL_GRAMMAR_SUMMARY) < 2000
    for word in ("guard", "solve", "verify", "old_", "==>", "&&", "let", "//"):
        assert word in AETHEL_GRAMMAR_SUMMARY


CONTRACT = (
    "intent t(a: A) {\n    guard {\n        a > 0;\n    }\n    solve {\n        p: q;\n"
    "    }\n    verify {\n        a > 0;\n    }\n}\n"
)


@pytest.mark.parametrize(
    "answer",
    [
        CONTRACT,
        f"Here is the contract:\n\n```aethel\n{CONTRACT}```\n\nIt moves funds safely.",
        f"Sure!\n```\n{CONTRACT}```",
        f"```python\nprint(1)\n```\nand\n```ae\n{CONTRACT}```",
        f"Sure, here it is:\n{CONTRACT}\nThis intent checks that a is positive.",
        f"```aethel\n{CONTRACT}",  # unterminated fence
    ],
)
def test_extract_aethel(answer: str) -> None:
    assert extract_aethel(answer) == CONTRACT


def test_extract_keeps_leading_comments_and_several_items() -> None:
    text = (
        "Answer:\n# Transfer\n"
        + CONTRACT
        + "\n"
        + CONTRACT.replace("intent t", "intent u")
        + "\nDone."
    )
    out = extract_aethel(text)
    assert out.startswith("# Transfer\nintent t(")
    assert "intent u(" in out and "Done" not in out


def test_extract_without_contract_returns_text() -> None:
    assert extract_aethel("  I cannot do that.  ") == "I cannot do that.\n"
