"""End to end: textDocument/completion (instant local items, no engine request) and the
lazy AI item resolved through completionItem/resolve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lsprotocol import types

from tests.e2e.lsp_harness import Harness, full_capabilities, start_server
from tests.fakes.ollama import FakeOllama, Reply

MODEL = "qwen2.5-coder:1.5b"
CONTRACT = """intent pay(from: Account, to: Account, amount: Balance) {
    guard {
        amount > 0;
    }
    solve {
        priority: security;
    }
    verify {
        to_balance == old_to_balance + amount;
    }
}

"""


@pytest.fixture
async def lsp(tmp_path: Path) -> AsyncIterator[Harness]:
    fake = FakeOllama()
    fake.start()
    caps = full_capabilities()
    assert caps.text_document is not None
    caps.text_document.completion = types.CompletionClientCapabilities(
        completion_item=types.ClientCompletionItemOptions(
            snippet_support=True,
            documentation_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText],
            resolve_support=types.ClientCompletionItemResolveOptions(
                properties=["documentation", "detail", "additionalTextEdits"]
            ),
        )
    )
    harness = await start_server(
        tmp_path,
        fake,
        capabilities=caps,
        editor_settings={"model": MODEL, "completion": {"model": MODEL}},
    )
    yield harness
    await harness.stop()


async def complete(h: Harness, uri: str, line: int, character: int) -> types.CompletionList:
    result = await asyncio.wait_for(
        h.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
            )
        ),
        10,
    )
    assert isinstance(result, types.CompletionList)
    return result


async def test_top_level_aethel_items_and_identifiers(lsp: Harness) -> None:
    uri = lsp.open("pay.ae", CONTRACT, language_id="aethel")
    result = await complete(lsp, uri, 12, 0)
    labels = [item.label for item in result.items]
    assert labels[:2] == ["intent", "atomic_batch"]
    intent = result.items[0]
    assert intent.insert_text_format == types.InsertTextFormat.Snippet
    assert intent.insert_text is not None and "guard {" in intent.insert_text
    assert "verify {" in intent.insert_text
    for name in ("pay", "amount", "to_balance", "old_to_balance", "security"):
        assert name in labels
    assert "guard" not in labels  # keywords only where they fit
    assert labels[-1] == "AI completion"
    assert lsp.fake is not None and lsp.fake.generate_requests() == []  # instant, no model


async def test_inside_an_intent_offers_the_blocks(lsp: Harness) -> None:
    doc = "intent pay(a: Account) {\n    \n}\n"
    uri = lsp.open("blocks.ae", doc, language_id="aethel")
    labels = [i.label for i in (await complete(lsp, uri, 1, 4)).items]
    assert labels[:4] == ["guard/solve/verify", "guard", "solve", "verify"]


async def test_ai_item_is_resolved_lazily(lsp: Harness) -> None:
    """VS Code-like client: the resolved item's insertText carries the suggestion."""
    assert lsp.fake is not None
    uri = lsp.open("calc.py", "def double(x):\n    return \n")
    result = await complete(lsp, uri, 1, 11)
    (ai,) = [i for i in result.items if i.label == "AI completion"]
    assert ai.insert_text == ""
    assert lsp.fake.generate_requests() == []
    lsp.fake.enqueue(Reply(tokens=["x ", "* 2"]))
    resolved = await asyncio.wait_for(lsp.client.completion_item_resolve_async(ai), 10)
    assert resolved.label == "AI completion"
    assert resolved.insert_text == "x * 2"
    assert resolved.additional_text_edits is None
    assert isinstance(resolved.documentation, types.MarkupContent)
    assert "x * 2" in resolved.documentation.value
    (body,) = lsp.fake.generate_requests()
    assert body["prompt"] == "def double(x):\n    return "
    assert body["suffix"] == "\n"


async def test_ai_item_for_a_neovim_like_client_is_an_additional_edit(tmp_path: Path) -> None:
    fake = FakeOllama()
    fake.start()
    caps = full_capabilities()
    assert caps.text_document is not None
    caps.text_document.completion = types.CompletionClientCapabilities(
        completion_item=types.ClientCompletionItemOptions(
            snippet_support=True,
            resolve_support=types.ClientCompletionItemResolveOptions(
                properties=["additionalTextEdits", "command"]
            ),
        )
    )
    h = await start_server(tmp_path, fake, capabilities=caps, editor_settings={"model": MODEL})
    try:
        uri = h.open("n.py", "value = tot\n")
        (ai,) = [i for i in (await complete(h, uri, 0, 11)).items if i.label == "AI completion"]
        assert ai.insert_text == "tot"  # the typed word: inserting it changes nothing
        fake.enqueue(Reply(tokens=["al + 1"]))
        resolved = await asyncio.wait_for(h.client.completion_item_resolve_async(ai), 10)
        assert resolved.insert_text == "tot"
        assert resolved.additional_text_edits is not None
        (edit,) = resolved.additional_text_edits
        assert edit.new_text == "al + 1"
        assert edit.range.start == edit.range.end == types.Position(line=0, character=11)
        assert resolved.documentation == "al + 1"  # no markdown support declared
    finally:
        await h.stop()


async def test_ai_item_can_be_turned_off(tmp_path: Path) -> None:
    fake = FakeOllama()
    fake.start()
    h = await start_server(
        tmp_path, fake, editor_settings={"model": MODEL, "completion": {"aiItem": False}}
    )
    try:
        uri = h.open("x.py", "alpha = 1\nal")
        labels = [i.label for i in (await complete(h, uri, 1, 2)).items]
        assert "alpha" in labels
        assert "AI completion" not in labels
        # This client cannot expand snippets: skeletons come as plain text.
        ae = h.open("y.ae", "", language_id="aethel")
        intent = (await complete(h, ae, 0, 0)).items[0]
        assert intent.insert_text_format == types.InsertTextFormat.PlainText
        assert intent.insert_text is not None and intent.insert_text.startswith(
            "intent name(account: Account, amount: Balance) {"
        )
        assert "$" not in intent.insert_text
    finally:
        await h.stop()
