"""End to end: the Aethel features of the real server process (pytest-lsp over stdio).

Diagnostics on open/change (syntax at once, checker after, stale checks dropped),
document symbols, hover, folding, formatting, definition/references/highlights,
semantic tokens, UTF-16 positions, and silence on non-Aethel documents.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types

from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "aethel"
TRANSFER = (FIXTURES / "examples" / "transfer.ae").read_text(encoding="utf-8")
ESCROW = (FIXTURES / "examples" / "escrow_batch.ae").read_text(encoding="utf-8")
VIOLATION = (FIXTURES / "examples" / "conservation_violation.ae").read_text(encoding="utf-8")
DRIFT = (FIXTURES / "examples" / "drift.ae").read_text(encoding="utf-8")

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama()
    fake.start()
    harness = await start_server(tmp_path_factory.mktemp("aethel"), fake)
    yield harness
    await harness.stop()


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


def pos(text: str, needle: str, nth: int = 0, delta: int = 0) -> types.Position:
    """Position (UTF-16 == code points for ASCII text) of the nth `needle`."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    offset += delta
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


async def diagnostics_where(
    lsp: Harness, uri: str, predicate: object, timeout: float = 15.0
) -> list[types.Diagnostic]:
    assert callable(predicate)

    def ready() -> tuple[list[types.Diagnostic]] | None:
        if uri not in lsp.client.diagnostics:
            return None
        found = list(lsp.client.diagnostics[uri])
        return (found,) if predicate(found) else None  # a tuple: [] must count as ready

    result: tuple[list[types.Diagnostic]] = await lsp.wait_for(ready, timeout)
    return result[0]


async def test_capabilities(lsp: Harness) -> None:
    caps = lsp.init_result.capabilities
    assert caps.document_symbol_provider
    assert caps.hover_provider
    assert caps.folding_range_provider
    assert caps.document_formatting_provider
    assert caps.definition_provider and caps.references_provider
    assert caps.document_highlight_provider
    tokens = caps.semantic_tokens_provider
    assert isinstance(tokens, types.SemanticTokensOptions)
    assert "parameter" in tokens.legend.token_types


async def test_valid_document_gets_empty_diagnostics(lsp: Harness) -> None:
    uri = lsp.open("transfer.ae", TRANSFER, "aethel")
    assert await diagnostics_where(lsp, uri, lambda d: d == []) == []
    await asyncio.sleep(0.6)  # the checker pass must not add anything
    assert list(lsp.client.diagnostics[uri]) == []


async def test_checker_finding_arrives_after_syntax(lsp: Harness) -> None:
    uri = lsp.open("violation.ae", VIOLATION, "aethel")
    found = await diagnostics_where(lsp, uri, lambda d: len(d) == 1)
    (d,) = found
    assert d.code == "conservation" and d.source == "aethel"
    assert d.severity == types.DiagnosticSeverity.Error
    assert d.range.start == types.Position(line=10, character=4)
    assert "sum to +1, not 0" in d.message


async def test_drift_syntax_diagnostics_at_the_right_places(lsp: Harness) -> None:
    uri = lsp.open("drift.ae", DRIFT, "aethel")
    found = await diagnostics_where(lsp, uri, lambda d: len(d) >= 5)
    starts = [(d.range.start.line, d.range.start.character, d.code) for d in found]
    assert starts == [
        (0, 0, "foreign-comment"),
        (3, 8, "foreign-member"),
        (4, 15, "foreign-assign"),
        (4, 17, "foreign-member"),
        (10, 8, "foreign-if"),
    ]
    assert found[2].range.end == types.Position(line=4, character=16)
    # a mechanical repair travels with the diagnostic, for quick fixes
    assert found[2].data == {
        "fix": {
            "title": "Replace `=` with `==`",
            "range": {"start": {"line": 4, "character": 15}, "end": {"line": 4, "character": 16}},
            "newText": "==",
        }
    }
    assert found[4].data is None  # `if` has no mechanical fix


async def test_change_updates_and_a_stale_check_is_dropped(lsp: Harness) -> None:
    big = "\n".join(VIOLATION.replace("bad_transfer", f"bad_{i}") for i in range(150))
    uri = lsp.open("changing.ae", big, "aethel")
    await asyncio.sleep(0.05)
    fixed = TRANSFER.replace("amount > 0;", "amount = 0;")
    lsp.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
        )
    )
    found = await diagnostics_where(
        lsp, uri, lambda d: len(d) == 1 and d[0].code == "foreign-assign"
    )
    assert found[0].range.start == types.Position(line=3, character=15)
    # the 150 conservation findings of version 1 never replace version 2's diagnostics
    await asyncio.sleep(1.0)
    assert [d.code for d in lsp.client.diagnostics[uri]] == ["foreign-assign"]


async def test_close_clears_diagnostics(lsp: Harness) -> None:
    uri = lsp.open("closing.ae", DRIFT, "aethel")
    await diagnostics_where(lsp, uri, lambda d: len(d) >= 5)
    lsp.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=doc(uri)))
    await diagnostics_where(lsp, uri, lambda d: d == [])


async def test_non_aethel_documents_are_ignored(lsp: Harness) -> None:
    uri = lsp.open("script.py", "intent x = 1 // 2\n", "python")
    symbols = await lsp.client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=doc(uri))
    )
    assert symbols is None
    hover = await lsp.client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=types.Position(line=0, character=1))
    )
    assert hover is None
    await asyncio.sleep(0.3)
    assert uri not in lsp.client.diagnostics


async def test_document_symbols(lsp: Harness) -> None:
    uri = lsp.open("escrow.ae", ESCROW, "aethel")
    symbols = await lsp.client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=doc(uri))
    )
    assert symbols is not None
    (batch,) = symbols
    assert isinstance(batch, types.DocumentSymbol)
    assert batch.name == "escrow" and batch.kind == types.SymbolKind.Namespace
    assert batch.children is not None
    assert [c.name for c in batch.children] == ["deposit", "release"]
    deposit = batch.children[0]
    assert deposit.kind == types.SymbolKind.Function
    assert deposit.selection_range.start == pos(ESCROW, "deposit")
    assert deposit.children is not None
    assert [c.name for c in deposit.children] == ["buyer", "amount", "guard", "solve", "verify"]


async def test_hover(lsp: Harness) -> None:
    uri = lsp.open("hover.ae", ESCROW, "aethel")
    hover = await lsp.client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=pos(ESCROW, "guard", delta=2))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    assert hover.contents.value.startswith("**guard**")
    hover = await lsp.client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=pos(ESCROW, "amount", 1))
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "**parameter** `secret amount: Balance`" in hover.contents.value
    assert hover.range is not None and hover.range.start == pos(ESCROW, "amount", 1)


async def test_folding_ranges(lsp: Harness) -> None:
    uri = lsp.open("fold.ae", ESCROW, "aethel")
    ranges = await lsp.client.text_document_folding_range_async(
        types.FoldingRangeParams(text_document=doc(uri))
    )
    assert ranges is not None
    spans = {(r.start_line, r.end_line) for r in ranges}
    assert {(1, 35), (2, 17), (3, 8), (19, 34)} <= spans


async def test_formatting(lsp: Harness) -> None:
    messy = "intent t(a:A){guard{a>0;}solve{p:q;}verify{a>0;}}"
    uri = lsp.open("fmt.ae", messy, "aethel")
    edits = await lsp.client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=doc(uri),
            options=types.FormattingOptions(tab_size=4, insert_spaces=True),
        )
    )
    assert edits is not None and len(edits) == 1
    assert edits[0].range.start == types.Position(line=0, character=0)
    assert edits[0].new_text == (
        "intent t(a: A) {\n    guard {\n        a > 0;\n    }\n    solve {\n        p: q;\n"
        "    }\n    verify {\n        a > 0;\n    }\n}\n"
    )
    bad = lsp.open("fmt_bad.ae", DRIFT, "aethel")
    edits = await lsp.client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=doc(bad),
            options=types.FormattingOptions(tab_size=4, insert_spaces=True),
        )
    )
    assert edits is not None and list(edits) == []
    await lsp.wait_for(lambda: any("not formatting" in m.message for m in lsp.client.messages))


async def test_definition_references_highlight(lsp: Harness) -> None:
    uri = lsp.open("nav.ae", TRANSFER, "aethel")
    use = pos(TRANSFER, "amount", 3)  # `amount` in verify
    location = await lsp.client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(uri), position=use)
    )
    assert isinstance(location, types.Location)
    assert location.range.start == pos(TRANSFER, "amount: Balance")
    refs = await lsp.client.text_document_references_async(
        types.ReferenceParams(
            text_document=doc(uri),
            position=use,
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert refs is not None and len(refs) == 5
    highlights = await lsp.client.text_document_document_highlight_async(
        types.DocumentHighlightParams(text_document=doc(uri), position=use)
    )
    assert highlights is not None and len(highlights) == 5


async def test_semantic_tokens(lsp: Harness) -> None:
    uri = lsp.open("tokens.ae", TRANSFER, "aethel")
    legend = lsp.init_result.capabilities.semantic_tokens_provider
    assert isinstance(legend, types.SemanticTokensOptions)
    result = await lsp.client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=doc(uri))
    )
    assert result is not None
    decoded: dict[tuple[int, int], tuple[int, str]] = {}
    line = char = 0
    data = list(result.data)
    for i in range(0, len(data), 5):
        d_line, d_char, length, kind, _mods = data[i : i + 5]
        line += d_line
        char = char + d_char if d_line == 0 else d_char
        decoded[(line, char)] = (length, legend.legend.token_types[kind])
    assert decoded[(0, 0)][1] == "comment"
    assert decoded[(1, 0)] == (6, "keyword")  # intent
    assert decoded[(1, 7)] == (8, "function")  # transfer
    assert decoded[(1, 16)] == (4, "parameter")  # from
    assert decoded[(1, 22)] == (7, "type")  # Account


async def test_utf16_positions(lsp: Harness) -> None:
    """Columns after a non-BMP character are counted in UTF-16 units (2 for 😀)."""
    text = TRANSFER.replace("amount > 0;", 'tag == "😀" + amount;')
    uri = lsp.open("utf16.ae", text, "aethel")
    found = await diagnostics_where(lsp, uri, lambda d: len(d) == 1)
    (d,) = found
    assert d.code == "foreign-string"
    assert d.range.start == types.Position(line=3, character=15)
    assert d.range.end == types.Position(line=3, character=19)  # "😀" = 1 + 2 + 1 units
    # `amount` after the emoji: UTF-16 column 22 (code point column 21)
    location = await lsp.client.text_document_definition_async(
        types.DefinitionParams(
            text_document=doc(uri), position=types.Position(line=3, character=23)
        )
    )
    assert isinstance(location, types.Location)
    assert location.range.start == pos(text, "amount: Balance")


async def test_requests_are_answered_while_the_checker_runs(lsp: Harness) -> None:
    big = "\n".join(TRANSFER.replace("transfer", f"transfer_{i}") for i in range(300))
    uri = lsp.open("busy.ae", big, "aethel")
    await diagnostics_where(lsp, uri, lambda d: d == [])  # syntax pass done, checker running
    hover = await asyncio.wait_for(
        lsp.client.text_document_hover_async(
            types.HoverParams(text_document=doc(uri), position=pos(big, "guard", delta=1))
        ),
        5,
    )
    assert hover is not None


async def test_utf8_position_encoding(tmp_path: Path) -> None:
    """Neovim negotiates UTF-8: columns after 😀 count its 4 bytes."""
    caps = types.ClientCapabilities(
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf8]
        ),
        text_document=types.TextDocumentClientCapabilities(
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities()
        ),
    )
    fake = FakeOllama()
    fake.start()
    harness = await start_server(tmp_path, fake, capabilities=caps)
    try:
        assert harness.init_result.capabilities.position_encoding == "utf-8"
        text = TRANSFER.replace("amount > 0;", 'tag == "😀" + amount;')
        uri = harness.open("utf8.ae", text, "aethel")
        found = await diagnostics_where(harness, uri, lambda d: len(d) == 1)
        assert found[0].range.start == types.Position(line=3, character=15)
        assert found[0].range.end == types.Position(line=3, character=21)  # 1 + 4 + 1 bytes
    finally:
        await harness.stop()


async def test_checker_strict_setting_makes_not_proven_an_error(tmp_path: Path) -> None:
    """`checker.strict` (editor setting): a spent solver budget is an error, not a warning."""
    fake = FakeOllama()
    fake.start()
    settings = {"checker": {"strict": True, "fileBudgetMs": 1}}
    harness = await start_server(tmp_path, fake, editor_settings=settings)
    try:
        text = "\n".join(TRANSFER.replace("transfer", f"transfer_{i}") for i in range(40))
        uri = harness.open("strict.ae", text, "aethel")
        found = await diagnostics_where(
            harness, uri, lambda d: any(x.code == "solver-budget" for x in d), timeout=30
        )
        spent = [d for d in found if d.code == "solver-budget"]
        assert all(d.severity == types.DiagnosticSeverity.Error for d in spent)
        assert "not proven" in spent[0].message
    finally:
        await harness.stop()


async def test_a_burst_of_changes_ends_with_the_last_version(lsp: Harness) -> None:
    big = "\n".join(TRANSFER.replace("transfer", f"transfer_{i}") for i in range(200))
    uri = lsp.open("burst.ae", big, "aethel")
    for version in range(2, 12):
        text = big.replace("amount > 0;", f"amount > {'9' * version}", 1)  # missing `;`
        lsp.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
    found = await diagnostics_where(
        lsp,
        uri,
        lambda d: len(d) == 1 and d[0].range.end.character == 28,  # eleven 9s
    )
    assert "found `from_balance`" in found[0].message
    assert found[0].range.start == types.Position(line=3, character=17)
    await asyncio.sleep(0.8)  # nothing stale arrives afterwards (checker included)
    (last,) = lsp.client.diagnostics[uri]
    assert last.range.end == types.Position(line=3, character=28)


async def test_rename(lsp: Harness) -> None:
    uri = lsp.open("rename.ae", TRANSFER, "aethel")
    at = pos(TRANSFER, "to_balance", 1)  # guard: `old_to_balance == to_balance;`
    at = types.Position(line=at.line, character=at.character + 4)  # inside `to_balance`
    prepared = await lsp.client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=doc(uri), position=at)
    )
    assert isinstance(prepared, types.Range)
    edit = await lsp.client.text_document_rename_async(
        types.RenameParams(text_document=doc(uri), position=at, new_name="dest")
    )
    assert edit is not None and edit.changes is not None
    new_texts = sorted(e.new_text for e in edit.changes[uri])
    assert new_texts == ["dest", "dest", "old_dest", "old_dest"]


async def test_mechanical_quick_fix_is_offered_without_the_model(lsp: Harness) -> None:
    uri = lsp.open("drift_fix.ae", DRIFT, "aethel")
    found = await diagnostics_where(lsp, uri, lambda d: len(d) >= 5)
    assign = next(d for d in found if d.code == "foreign-assign")
    assert lsp.fake is not None
    requests_before = len(lsp.fake.requests)
    actions = await lsp.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=doc(uri),
            range=assign.range,
            context=types.CodeActionContext(diagnostics=[assign]),
        )
    )
    assert actions is not None
    quick = [a for a in actions if isinstance(a, types.CodeAction) and a.edit is not None]
    assert [a.title for a in quick] == ["Replace `=` with `==`"]
    assert quick[0].kind == types.CodeActionKind.QuickFix and quick[0].is_preferred
    assert quick[0].edit is not None and quick[0].edit.changes is not None
    (edit,) = quick[0].edit.changes[uri]
    assert edit.new_text == "==" and edit.range.start == types.Position(line=4, character=15)
    # the AI fix for the same diagnostic is still offered, after the exact one
    titles = [a.title for a in actions]
    assert any(t.startswith("Fix with AI") for t in titles)
    assert titles.index("Replace `=` with `==`") < next(
        i for i, t in enumerate(titles) if t.startswith("Fix with AI")
    )
    assert len(lsp.fake.requests) == requests_before  # listing never calls the engine
