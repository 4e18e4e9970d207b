"""`aethel.distillContract` through the real server, against the fake Ollama with two
models scripted to fail in different ways (the CLI: test_cli_distill.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama
from tests.unit.test_distill import BROKEN, CHAT, CODER, DESCRIPTION, MINTING, MOVE, PAY, fenced

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama(token_delay=0.001)
    fake.start()
    harness = await start_server(
        tmp_path_factory.mktemp("distill"), fake,
        editor_settings={"engine": "ollama", "model": CODER,
                         "distill": {"models": [CHAT, CODER], "agree": 0, "concurrency": 1},
                         "generation": {"repairRounds": 0}},
    )
    yield harness
    await harness.stop()


async def test_best_of_n_is_listed_next_to_generate(lsp: Harness) -> None:
    uri = lsp.open("offer.ae", "# pay someone\n", language_id="aethel")
    actions = await lsp.client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(0, 0), types.Position(0, 0)),
        context=types.CodeActionContext(diagnostics=[])))
    titles = [a.title for a in actions or []]
    generate = next(i for i, t in enumerate(titles) if t.endswith("Generate Aethel contract"))
    assert titles[generate + 1].endswith("Generate Aethel contract (best of 4)")


async def test_the_valid_contract_is_chosen_applied_and_explained(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(fenced(BROKEN), fenced(MINTING), model=CHAT)
    lsp.fake.enqueue(fenced(MOVE), fenced(PAY), model=CODER)
    uri = lsp.open("pay.ae", f"# {DESCRIPTION}\n", language_id="aethel")
    point = {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}}
    result = await lsp.command(protocol.CMD_DISTILL_CONTRACT, {"uri": uri, "range": point})
    assert set(result) == {"best", "candidates", "explanation"}
    assert result["best"]["model"] == CODER and result["best"]["valid"] is True
    assert result["best"]["text"] == PAY
    assert [c["valid"] for c in result["candidates"]] == [True, True, False, False]
    assert result["explanation"].startswith(f"Chose #4 ({CODER})")
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    assert edit.range.start == types.Position(1, 0)
    assert edit.new_text.startswith(f"# aethel-lsp: best of 4 candidates, written by {CODER}")
    assert PAY in edit.new_text
    reports = lsp.progress_for_title("Generate Aethel contract (best of 4)")[-1]
    messages = [r.message for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert any(m and m.startswith("4/4 checked, 2 valid") for m in messages), messages
    end = reports[-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message is not None
    assert end.message.startswith("2/4 valid · chose #4")


async def test_arguments_choose_models_and_count(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(fenced(PAY), model=CHAT)
    uri = lsp.open("one.ae", "", language_id="aethel")
    point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    result = await lsp.command(protocol.CMD_DISTILL_CONTRACT, {
        "uri": uri, "range": point, "description": DESCRIPTION, "candidates": 1,
        "models": [CHAT]})
    assert [c["model"] for c in result["candidates"]] == [CHAT]
    for bad in ({"candidates": 0}, {"candidates": "4"}, {"models": []}, {"models": [3]}):
        with pytest.raises(JsonRpcException) as failed:
            await lsp.command(protocol.CMD_DISTILL_CONTRACT,
                              {"uri": uri, "range": point, "description": "x", **bad})
        assert failed.value.code == -32602


async def test_no_valid_candidate_is_not_applied(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(*[fenced(BROKEN)] * 4)
    uri = lsp.open("none.ae", "# something impossible\n", language_id="aethel")
    point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    before = len(lsp.applied)
    result = await lsp.command(protocol.CMD_DISTILL_CONTRACT, {"uri": uri, "range": point})
    assert result["best"]["valid"] is False
    assert result["explanation"].startswith("No candidate of 4 passed the checker.")
    assert len(lsp.applied) == before
    assert any("No candidate contract passed" in m.message for m in lsp.client.messages)
