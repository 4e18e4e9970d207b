"""Symbols, navigation, hover, folding and semantic tokens (pure functions)."""

from __future__ import annotations

import pytest

from aethel_lsp.language.parser import parse
from aethel_lsp.language.spans import Span
from aethel_lsp.language.symbols import (
    RenameError,
    SymbolKind,
    definition,
    document_symbols,
    folding_ranges,
    hover,
    references,
    rename,
    semantic_tokens,
)
from tests.unit.aethel_support import EXAMPLES, read

ESCROW = read(EXAMPLES / "escrow_batch.ae")
TRANSFER = read(EXAMPLES / "transfer.ae")


def offset_of(text: str, needle: str, nth: int = 0) -> int:
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(needle, pos + 1)
    return pos


def test_document_symbols_nest_batches_intents_params_blocks() -> None:
    (batch,) = document_symbols(parse(ESCROW).program)
    assert (batch.name, batch.kind) == ("escrow", SymbolKind.BATCH)
    deposit, release = batch.children
    assert (
        deposit.name == "deposit" and deposit.detail == "(buyer: Account, secret amount: Balance)"
    )
    kinds = [(c.name, c.kind) for c in deposit.children]
    assert kinds == [
        ("buyer", SymbolKind.PARAM),
        ("amount", SymbolKind.PARAM),
        ("guard", SymbolKind.BLOCK),
        ("solve", SymbolKind.BLOCK),
        ("verify", SymbolKind.BLOCK),
    ]
    assert [s.name for s in deposit.children[3].children] == ["priority", "target"]
    assert ESCROW[deposit.selection.start : deposit.selection.end] == "deposit"
    assert release.span.start_line == 19


def test_symbols_survive_broken_text() -> None:
    broken = TRANSFER.replace("amount > 0;", "amount > ;") + "\nintent half(x: X) {\n  guard {"
    names = [s.name for s in document_symbols(parse(broken).program)]
    assert names == ["transfer", "half"]


def test_definition_is_the_parameter_or_first_use() -> None:
    program = parse(TRANSFER).program
    use = offset_of(TRANSFER, "amount", 2)  # `amount > 0;` in guard
    span = definition(program, use + 2)
    assert span is not None and TRANSFER[span.start : span.end] == "amount"
    assert span.start == offset_of(TRANSFER, "amount: Balance")
    use = offset_of(TRANSFER, "old_to_balance", 1)  # in verify
    span = definition(program, use)
    assert span is not None and span.start == offset_of(TRANSFER, "old_to_balance")


def test_references_stay_within_the_intent() -> None:
    program = parse(ESCROW).program
    at = offset_of(ESCROW, "old_escrow_funds")  # deposit's guard
    spans = references(program, at)
    assert len(spans) == 2  # deposit: guard + verify; release has its own
    assert all(s.end <= offset_of(ESCROW, "intent release") for s in spans)
    params = references(parse(TRANSFER).program, offset_of(TRANSFER, "amount"), False)
    assert len(params) == 4  # guard x2, verify x2 (the declaration is excluded)
    assert all(TRANSFER[s.start : s.end] == "amount" for s in params)


def test_hover_keywords_params_and_state_variables() -> None:
    program = parse(ESCROW).program
    h = hover(ESCROW, program, offset_of(ESCROW, "atomic_batch") + 3)
    assert h is not None and h.markdown.startswith("**atomic_batch**")
    h = hover(ESCROW, program, offset_of(ESCROW, "verify"))
    assert h is not None and "postconditions" in h.markdown
    h = hover(ESCROW, program, offset_of(ESCROW, "amount", 2))
    assert h is not None and "**parameter** `secret amount: Balance`" in h.markdown
    h = hover(ESCROW, program, offset_of(ESCROW, "buyer_funds"))
    assert h is not None and "State variable" in h.markdown
    h = hover(ESCROW, program, offset_of(ESCROW, "old_buyer_funds"))
    assert h is not None and "`old_buyer_funds == buyer_funds;`" in h.markdown
    h = hover(ESCROW, program, offset_of(ESCROW, ">="))
    assert h is not None and "greater than or equal" in h.markdown
    assert hover(ESCROW, program, 0) is None  # in a comment


def test_folding_ranges() -> None:
    ranges = folding_ranges(parse(ESCROW).program)
    lines = {(r.start_line, r.end_line, r.kind) for r in ranges}
    assert (1, 35, "region") in lines  # the batch
    assert (2, 17, "region") in lines  # deposit
    assert (3, 8, "region") in lines  # deposit guard


def test_semantic_tokens_classify_with_the_tree() -> None:
    program = parse(TRANSFER).program
    tokens = {
        TRANSFER[t.start : t.start + t.length]: (t.type, t.modifiers)
        for t in semantic_tokens(TRANSFER, program)
    }
    assert tokens["intent"] == ("keyword", ())
    assert tokens["transfer"] == ("function", ("declaration",))
    assert tokens["Account"] == ("type", ())
    assert tokens["priority"] == ("property", ())
    assert tokens["security"] == ("enumMember", ())
    assert tokens["old_to_balance"] == ("variable", ("readonly",))
    assert tokens["to_balance"] == ("variable", ())
    assert tokens["0"] == ("number", ())
    assert tokens["=="] == ("operator", ())
    assert tokens[TRANSFER.splitlines()[0]] == ("comment", ())


def apply(text: str, edits: list[tuple[Span, str]]) -> str:
    for span, new in sorted(edits, key=lambda e: e[0].start, reverse=True):
        text = text[: span.start] + new + text[span.end :]
    return text


def test_rename_keeps_old_snapshots_paired() -> None:
    program = parse(TRANSFER).program
    edits = rename(program, offset_of(TRANSFER, "from_balance"), "sender_funds")
    renamed = apply(TRANSFER, edits)
    assert "old_sender_funds == sender_funds;" in renamed
    assert "sender_funds == old_sender_funds - amount;" in renamed
    assert "from_balance" not in renamed
    assert parse(renamed).diagnostics == []
    edits = rename(program, offset_of(TRANSFER, "old_to_balance"), "old_dest")
    assert "dest == old_dest + amount;" in apply(TRANSFER, edits)


def test_rename_parameter_within_its_intent_only() -> None:
    program = parse(ESCROW).program
    edits = rename(program, offset_of(ESCROW, "amount"), "value")
    renamed = apply(ESCROW, edits)
    assert "secret value: Balance" in renamed and "buyer_funds >= value;" in renamed
    assert len(edits) == 5


def test_rename_refusals() -> None:
    program = parse(TRANSFER).program
    with pytest.raises(RenameError, match="not a valid Aethel name"):
        rename(program, offset_of(TRANSFER, "amount"), "guard")
    with pytest.raises(RenameError, match="already used"):
        rename(program, offset_of(TRANSFER, "amount"), "to_balance")
    with pytest.raises(RenameError, match="Only names"):
        rename(program, offset_of(TRANSFER, "priority"), "x")
