"""`aethel.distillContract` under hostile use, through the real server and the fake Ollama:
arguments of the wrong type, unknown and repeated models, streams that never end or break
midway, both cancel routes (every upstream stream closes, progress ends exactly once), and
the document closed or edited while the candidates are being written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Fault, Reply
from tests.unit.test_distill import CHAT, CODER, DESCRIPTION, PAY, fenced

pytestmark = pytest.mark.asyncio(loop_scope="module")

TITLE = "Generate Aethel contract (best of {n})"
POINT = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
FOREVER = " ".join(f"word{i}" for i in range(2000))  # 0.05 s a token: never ends in a test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama(token_delay=0.001)
    fake.start()
    harness = await start_server(
        tmp_path_factory.mktemp("distill-hostile"), fake,
        editor_settings={"engine": "ollama", "model": CODER,
                         "distill": {"models": [CHAT, CODER], "agree": 0, "concurrency": 2},
                         "generation": {"repairRounds": 0}},
    )
    yield harness
    await harness.stop()


@pytest.fixture(autouse=True)
def fresh_fake(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.clear()


def ends(lsp: Harness, n: int) -> list[list[Any]]:
    return lsp.progress_for_title(TITLE.format(n=n))


def applied_edits(edit: types.WorkspaceEdit) -> list[types.TextEdit]:
    """The text edits of a workspace edit, whichever shape the server chose."""
    if edit.changes:
        return [e for edits in edit.changes.values() for e in edits]
    return [e for change in edit.document_changes or []
            if isinstance(change, types.TextDocumentEdit)
            for e in change.edits if isinstance(e, types.TextEdit)]


def end_count(reports: list[Any]) -> int:
    return sum(isinstance(r, types.WorkDoneProgressEnd) for r in reports)


async def test_arguments_of_the_wrong_type_are_invalid_params(lsp: Harness) -> None:
    uri = lsp.open("args.ae", "", language_id="aethel")
    bad_args: list[dict[str, Any]] = [
        {"uri": uri, "range": POINT, "description": 5},
        {"uri": uri, "range": POINT, "description": {"text": DESCRIPTION}},
        {"uri": uri, "range": POINT, "description": [DESCRIPTION]},
        {"uri": 7, "range": POINT, "description": DESCRIPTION},
        {"uri": uri, "range": "all", "description": DESCRIPTION},
        {"uri": uri, "range": {"start": 0, "end": 1}, "description": DESCRIPTION},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": True},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 33},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 2.0},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "models": CHAT},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "models": [CHAT, " "]},
        {"uri": uri, "range": POINT, "description": DESCRIPTION, "models": {"a": 1}},
        {"uri": uri + "-missing", "range": POINT, "description": DESCRIPTION},
    ]
    for args in bad_args:
        with pytest.raises(JsonRpcException) as failed:
            await lsp.command(protocol.CMD_DISTILL_CONTRACT, args)
        assert failed.value.code == -32602, (args, failed.value)
    assert lsp.fake is not None and lsp.fake.chat_requests() == []


async def test_unknown_models_fail_only_their_candidates(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.set_reply(CODER, fenced(PAY))
    uri = lsp.open("unknown.ae", "", language_id="aethel")
    result = await lsp.command(protocol.CMD_DISTILL_CONTRACT, {
        "uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 4,
        "models": ["no-such-model", CODER, CODER]})
    assert result["best"]["model"] == CODER and result["best"]["valid"] is True
    missing = [c for c in result["candidates"] if c["model"] == "no-such-model"]
    assert len(missing) == 2 and all(not c["valid"] for c in missing)
    assert all("not installed" in c["reason"] for c in missing), missing
    assert end_count(ends(lsp, 4)[-1]) == 1


async def test_only_unknown_models_is_an_engine_error_and_progress_ends_once(
    lsp: Harness,
) -> None:
    uri = lsp.open("nobody.ae", "", language_id="aethel")
    with pytest.raises(JsonRpcException) as failed:
        await lsp.command(protocol.CMD_DISTILL_CONTRACT, {
            "uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 3,
            "models": ["ghost-a", "ghost-b"]})
    assert failed.value.code == -32803 and "not installed" in str(failed.value)
    reports = ends(lsp, 3)[-1]
    assert end_count(reports) == 1 and reports[-1].message.startswith("Failed:")


async def test_every_stream_breaking_midway_is_an_error_not_a_verdict(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.inject(Fault.error_line(after_tokens=2), path="/api/chat", times=5)
    uri = lsp.open("broken.ae", "", language_id="aethel")
    before = len(lsp.applied)
    with pytest.raises(JsonRpcException) as failed:
        await lsp.command(protocol.CMD_DISTILL_CONTRACT, {
            "uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 5})
    assert failed.value.code == -32803
    assert len(lsp.applied) == before
    assert end_count(ends(lsp, 5)[-1]) == 1


async def _start_endless(lsp: Harness, msg_id: str, n: int) -> tuple[asyncio.Future[Any], str]:
    """A distillation whose every candidate streams forever; returns (future, token)."""
    assert lsp.fake is not None
    for model in (CHAT, CODER):
        lsp.fake.set_reply(model, Reply(text=FOREVER, token_delay=0.05))
    uri = lsp.open(f"{msg_id}.ae", "", language_id="aethel")
    future = asyncio.ensure_future(lsp.client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command=protocol.CMD_DISTILL_CONTRACT, arguments=[
            {"uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": n}]),
        msg_id=msg_id))
    fake = lsp.fake
    await lsp.wait_for(lambda: len(fake.streams) >= 2
                       and all(s.tokens_sent >= 2 for s in fake.streams[:2]), timeout=30)
    tokens = await lsp.wait_for(lambda: [
        t for t, r in lsp.client.progress_reports.items()
        if r and isinstance(r[0], types.WorkDoneProgressBegin)
        and r[0].title == TITLE.format(n=n) and not isinstance(r[-1], types.WorkDoneProgressEnd)
    ])
    return future, tokens[-1]


async def _assert_every_stream_closed(lsp: Harness) -> None:
    assert lsp.fake is not None
    fake = lsp.fake
    await lsp.wait_for(lambda: all(s.finished for s in fake.streams), timeout=30)
    streams = fake.requests_to("/api/chat")
    assert streams and all(s.closed_early and not s.completed for s in fake.streams)
    count = len(fake.streams)
    await asyncio.sleep(0.5)  # no candidate still waiting for its turn starts afterwards
    assert len(fake.streams) == count


async def _assert_ended_once(lsp: Harness, token: str) -> None:
    reports = await lsp.wait_for(
        lambda: isinstance(lsp.client.progress_reports[token][-1], types.WorkDoneProgressEnd)
        and lsp.client.progress_reports[token])
    assert end_count(reports) == 1 and reports[-1].message == "Cancelled"


async def test_cancel_request_closes_every_candidate_stream(lsp: Harness) -> None:
    future, token = await _start_endless(lsp, "distill-cancel-1", 4)
    lsp.client.cancel_request(types.CancelParams(id="distill-cancel-1"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(future, 15)
    await _assert_every_stream_closed(lsp)
    await _assert_ended_once(lsp, token)


async def test_progress_cancel_closes_every_candidate_stream(lsp: Harness) -> None:
    future, token = await _start_endless(lsp, "distill-cancel-2", 6)
    lsp.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(future, 15)
    assert err.value.code == -32800
    await _assert_every_stream_closed(lsp)
    await _assert_ended_once(lsp, token)


async def _distill_while(lsp: Harness, name: str, meanwhile: Any) -> dict[str, Any]:
    """Distill from a comment line; `meanwhile(uri)` runs once every candidate is asked."""
    assert lsp.fake is not None
    fake = lsp.fake
    for model in (CHAT, CODER):
        fake.set_reply(model, Reply(text=fenced(PAY).text, first_token_delay=2.0))
    uri = lsp.open(name, f"# {DESCRIPTION}\n", language_id="aethel")
    task = asyncio.ensure_future(lsp.command(protocol.CMD_DISTILL_CONTRACT, {
        "uri": uri, "range": POINT, "candidates": 2}))
    await lsp.wait_for(lambda: len(fake.chat_requests()) >= 2, timeout=30)
    meanwhile(uri)
    result: dict[str, Any] = await asyncio.wait_for(task, 30)
    return result


async def test_an_edit_above_during_the_run_never_inserts_at_the_stale_position(
    lsp: Harness,
) -> None:
    def edit_above(uri: str) -> None:
        lsp.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(
                text=f"# a new first line\n# {DESCRIPTION}\n")]))

    before = len(lsp.applied)
    result = await _distill_while(lsp, "edited.ae", edit_above)
    assert result["best"]["valid"] is True and result["best"]["text"] == PAY
    if len(lsp.applied) > before:  # re-anchored: under the comment, now on line 2
        [edit] = applied_edits(lsp.applied[-1].edit)
        assert edit.range.start == edit.range.end == types.Position(2, 0)
    else:  # or not inserted, and the contract offered to paste
        assert any("changed while" in m.message for m in lsp.client.messages)


async def test_an_edit_removing_the_description_during_the_run_is_kept(lsp: Harness) -> None:
    def rewrite(uri: str) -> None:
        lsp.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(
                text="# something else entirely\n")]))

    before = len(lsp.applied)
    result = await _distill_while(lsp, "rewritten.ae", rewrite)
    assert result["best"]["valid"] is True
    assert len(lsp.applied) == before
    assert any("changed while" in m.message for m in lsp.client.messages)


async def test_closing_the_document_during_the_run_still_answers(lsp: Harness) -> None:
    def close(uri: str) -> None:
        lsp.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    before = len(lsp.applied)
    result = await _distill_while(lsp, "closed.ae", close)
    assert result["best"]["valid"] is True
    assert len(lsp.applied) == before


async def test_a_description_too_long_for_the_context_is_refused_before_any_request(
    lsp: Harness,
) -> None:
    uri = lsp.open("huge.ae", "", language_id="aethel")
    huge = "pay the payee " * 40_000  # ~560 kB: far beyond an 8k-token context
    with pytest.raises(JsonRpcException) as failed:
        await lsp.command(protocol.CMD_DISTILL_CONTRACT,
                          {"uri": uri, "range": POINT, "description": huge})
    assert failed.value.code == -32602 and "too large" in str(failed.value)
    assert lsp.fake is not None and lsp.fake.chat_requests() == []


async def test_range_is_optional_as_documented(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.set_reply(CODER, fenced(PAY))
    lsp.fake.set_reply(CHAT, fenced(PAY))
    existing = "# notes\n# more notes\n"
    uri = lsp.open("norange.ae", existing, language_id="aethel")
    result = await lsp.command(protocol.CMD_DISTILL_CONTRACT,
                               {"uri": uri, "description": DESCRIPTION, "candidates": 1})
    assert result["best"]["valid"] is True
    [edit] = applied_edits(lsp.applied[-1].edit)
    assert edit.range.start == edit.range.end == types.Position(2, 0)  # appended at the end
    assert PAY in edit.new_text


async def test_a_mixed_session_ends_every_progress_exactly_once(lsp: Harness) -> None:
    """Twelve runs in one server: quick ones, and slow ones cancelled by either route."""
    assert lsp.fake is not None
    fake = lsp.fake
    outcomes: list[str] = []
    for i in range(12):
        fake.clear()
        slow = i % 3 == 1
        for model in (CHAT, CODER):
            fake.set_reply(model, Reply(text=fenced(PAY).text, token_delay=0.05 if slow else 0.0))
        uri = lsp.open(f"mixed{i}.ae", "", language_id="aethel")
        request = asyncio.ensure_future(lsp.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(command=protocol.CMD_DISTILL_CONTRACT, arguments=[
                {"uri": uri, "range": POINT, "description": DESCRIPTION, "candidates": 3}]),
            msg_id=f"mixed-{i}"))
        if slow:
            await lsp.wait_for(lambda: any(s.tokens_sent > 2 for s in fake.streams), 30)
            if i % 2:
                lsp.client.cancel_request(types.CancelParams(id=f"mixed-{i}"))
            else:
                open_tokens = [t for t, r in lsp.client.progress_reports.items()
                               if r and not isinstance(r[-1], types.WorkDoneProgressEnd)]
                lsp.client.window_work_done_progress_cancel(
                    types.WorkDoneProgressCancelParams(token=open_tokens[-1]))
        try:
            result = await asyncio.wait_for(request, 60)
            outcomes.append("valid" if result["best"]["valid"] else "invalid")
        except JsonRpcException as exc:
            outcomes.append(str(exc.code))
        await lsp.wait_for(lambda: all(s.finished for s in fake.streams), 30)
    assert outcomes == ["valid", "-32800", "valid"] * 4
    runs = lsp.progress_for_title(TITLE.format(n=3))[-12:]
    assert [end_count(reports) for reports in runs] == [1] * 12
