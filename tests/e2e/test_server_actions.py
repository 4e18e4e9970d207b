"""End to end: capabilities, instant code actions, streamed explain/improve/document/fix,
generate with a repair round, and clear errors for bad arguments (real server process,
fake Ollama over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aethel" / "examples"
PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
CONTRACT = """intent pay(from: Account, to: Account, amount: Balance) {
    guard {
        amount > 0;
        old_from == from;
        old_to == to;
    }
    solve {
        priority: security;
    }
    verify {
        from == old_from - amount;
        to == old_to + amount;
    }
}"""


# One server process for the whole module (tests only add documents and replies).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama(token_delay=0.002)
    fake.start()
    base = tmp_path_factory.mktemp("actions")
    harness = await start_server(
        base, fake, editor_settings={"engine": "ollama", "model": "qwen2.5-coder:1.5b"}
    )
    yield harness
    await harness.stop()


def _texts(reports: list[object]) -> str:
    return "".join(r.message or "" for r in reports if isinstance(r, types.WorkDoneProgressReport))


async def test_capabilities(lsp: Harness) -> None:
    caps = lsp.init_result.capabilities
    assert lsp.init_result.server_info is not None
    assert lsp.init_result.server_info.name == "aethel-lsp"
    assert caps.execute_command_provider is not None
    for cmd in (
        protocol.CMD_MODEL_STATUS,
        protocol.CMD_THROUGHPUT,
        protocol.CMD_LIST_MODELS,
        protocol.CMD_SELECT_MODEL,
        protocol.CMD_PULL_MODEL,
        protocol.CMD_EXPLAIN_SELECTION,
        protocol.CMD_GENERATE_CONTRACT,
        protocol.CMD_IMPROVE_SELECTION,
        protocol.CMD_DOCUMENT_SELECTION,
        protocol.CMD_FIX_WITH_AI,
    ):
        assert cmd in caps.execute_command_provider.commands
    provider = caps.code_action_provider
    assert isinstance(provider, types.CodeActionOptions)
    assert types.CodeActionKind.QuickFix in (provider.code_action_kinds or [])


async def test_code_actions_listed_without_engine_request(lsp: Harness) -> None:
    uri = lsp.open("a.py", PY)
    before = len(lsp.fake.requests) if lsp.fake else 0
    diag = types.Diagnostic(
        range=types.Range(start=types.Position(1, 4), end=types.Position(1, 16)),
        message="undefined name 'c'",
    )
    actions = await lsp.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(0, 0), end=types.Position(2, 0)),
            context=types.CodeActionContext(diagnostics=[diag]),
        )
    )
    assert actions is not None
    titles = [a.title for a in actions]
    for word in (
        protocol.TITLE_GENERATE_CONTRACT,
        protocol.TITLE_EXPLAIN,
        protocol.TITLE_IMPROVE,
        protocol.TITLE_DOCUMENT,
        protocol.TITLE_FIX,
    ):
        assert any(word in t for t in titles), (word, titles)
    for action in actions:
        assert isinstance(action, types.CodeAction)
        assert action.edit is None and action.command is None  # lazy: resolved on demand
        resolved = await lsp.client.code_action_resolve_async(action)
        assert resolved.command is not None and resolved.command.command.startswith("aethel.")
        assert resolved.command.arguments and resolved.command.arguments[0]["uri"] == uri
    fix = next(a for a in actions if protocol.TITLE_FIX in a.title)
    assert isinstance(fix, types.CodeAction) and list(fix.diagnostics or []) == [diag]
    assert fix.kind == types.CodeActionKind.QuickFix
    assert lsp.fake is not None and len(lsp.fake.requests) == before  # no engine call


async def test_explain_streams_progress_and_shows_document(lsp: Harness) -> None:
    assert lsp.fake is not None
    answer = "This function **adds** two numbers and returns the sum."
    lsp.fake.enqueue(Reply(text=answer))
    uri = lsp.open("a.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"] == answer
    assert result["metrics"]["tokensGenerated"] > 0
    reports = lsp.progress_for_title("Explaining selection")[-1]
    begin, end = reports[0], reports[-1]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.cancellable is True
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert _texts(reports) == answer  # report messages concatenate to the result text
    assert end.message is not None and "tokens ·" in end.message and "tok/s" in end.message
    assert lsp.client.shown_documents, "explanation shown with window/showDocument"
    shown = Path(lsp.client.shown_documents[-1].uri.removeprefix("file://"))
    assert answer in shown.read_text()  # noqa: ASYNC240 - a small local file
    # the request sent to the engine: a chat with the selection, the configured model
    body = lsp.fake.chat_requests()[-1]
    assert body["model"] == "qwen2.5-coder:1.5b"
    assert "return a + b" in body["messages"][-1]["content"]


async def test_improve_and_document_apply_edits(lsp: Harness) -> None:
    assert lsp.fake is not None
    uri = lsp.open("a.py", PY)
    improved = "def add(a: int, b: int) -> int:\n    return a + b"
    lsp.fake.enqueue(Reply(text=f"Here you go:\n```python\n{improved}\n```\n"))
    result = await lsp.command(protocol.CMD_IMPROVE_SELECTION, {"uri": uri, "range": SEL})
    assert result["applied"] is True
    assert result["text"] == improved + "\n"
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    assert edit.new_text == improved + "\n"
    assert edit.range.start == types.Position(0, 0) and edit.range.end == types.Position(2, 0)

    documented = 'def add(a, b):\n    """Return a + b."""\n    return a + b'
    lsp.fake.enqueue(Reply(text=f"```python\n{documented}\n```"))
    result = await lsp.command(protocol.CMD_DOCUMENT_SELECTION, {"uri": uri, "range": SEL})
    assert result["applied"] is True and '"""Return a + b."""' in result["text"]
    assert lsp.progress_for_title("Adding documentation")


async def test_fix_with_ai_on_diagnostic_range(lsp: Harness) -> None:
    assert lsp.fake is not None
    uri = lsp.open("b.py", "def f():\n    return c\n")
    lsp.fake.enqueue(Reply(text="```python\n    return 0\n```"))
    rng = {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}
    result = await lsp.command(
        protocol.CMD_FIX_WITH_AI,
        {
            "uri": uri,
            "range": rng,
            "diagnostics": [{"message": "undefined name 'c'", "range": rng}],
        },
    )
    assert result["applied"] is True and result["text"] == "    return 0\n"
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    assert edit.range.start == types.Position(1, 0) and edit.range.end == types.Position(2, 0)
    assert "undefined name 'c'" in lsp.fake.chat_requests()[-1]["messages"][-1]["content"]


async def test_generate_contract_from_comment_line(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text=CONTRACT))
    text = "# transfer with a 1% fee to the treasury\n"
    uri = lsp.open("fee.ae", text, language_id="aethel")
    point = {"start": {"line": 0, "character": 3}, "end": {"line": 0, "character": 3}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is True and result["attempts"] == 1 and result["applied"] is True
    assert result["diagnostics"] == []
    assert result["text"] == CONTRACT
    reports = lsp.progress_for_title("Generating Aethel contract")[-1]
    assert _texts(reports) == result["text"]
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    assert edit.range.start == types.Position(1, 0)  # inserted after the comment line
    assert edit.new_text == CONTRACT + "\n"
    prompt = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "transfer with a 1% fee to the treasury" in prompt


async def test_generate_contract_from_a_comment_on_the_last_line(lsp: Harness) -> None:
    """No newline after the comment: the contract goes on a new line, not glued to it."""
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text=CONTRACT))
    comment = "# transfer with a 1% fee to the treasury"
    uri = lsp.open("last.ae", comment, language_id="aethel")
    point = {"start": {"line": 0, "character": 3}, "end": {"line": 0, "character": 3}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is True and result["applied"] is True
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    end = types.Position(0, len(comment))
    assert edit.range.start == end and edit.range.end == end  # inside the document
    assert edit.new_text == "\n" + CONTRACT + "\n"


async def test_fix_with_ai_in_aethel_is_checked_before_it_lands(lsp: Harness) -> None:
    """A 'fix' that still breaks conservation goes back to the model; the checked one lands."""
    assert lsp.fake is not None
    minting = (FIXTURES / "conservation_violation.ae").read_text()
    uri = lsp.open("fixme.ae", minting, language_id="aethel")
    whole = {"start": {"line": 0, "character": 0},
             "end": {"line": minting.count("\n"), "character": 0}}
    lsp.fake.enqueue(Reply(text=f"```aethel\n{minting}```"), Reply(text=CONTRACT + "\n"))
    result = await lsp.command(protocol.CMD_FIX_WITH_AI, {"uri": uri, "range": whole})
    assert result["valid"] is True and result["attempts"] == 2 and result["applied"] is True
    repair = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "conservation violated" in repair
    assert lsp.progress_for_title("Fixing with AI (checker round 1)")


async def test_fix_with_ai_in_aethel_that_stays_invalid_is_not_applied(lsp: Harness) -> None:
    assert lsp.fake is not None
    minting = (FIXTURES / "conservation_violation.ae").read_text()
    uri = lsp.open("stillbad.ae", "# keep\n" + minting, language_id="aethel")
    whole = {"start": {"line": 1, "character": 0},
             "end": {"line": 1 + minting.count("\n"), "character": 0}}
    lsp.fake.enqueue(*[Reply(text=f"```aethel\n{minting}```")] * 3)
    result = await lsp.command(protocol.CMD_FIX_WITH_AI, {"uri": uri, "range": whole})
    assert result["valid"] is False and result["applied"] is False and result["attempts"] == 3
    assert "conservation" in result["diagnostics"][0]["message"]
    assert any("checker rejects" in m.message for m in lsp.client.messages)
    assert not any(uri in (a.edit.changes or {}) for a in lsp.applied)


async def test_generate_contract_repairs_once_with_parse_errors(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text="intent broken( {\n  guard { x = 1 }\n"), Reply(text=CONTRACT))
    uri = lsp.open("empty.ae", "", language_id="aethel")
    point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is True and result["attempts"] == 2 and result["applied"] is True
    repair = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "intent broken(" in repair and "problems" in repair  # errors fed back
    assert lsp.progress_for_title("Repairing Aethel contract (round 1)")


async def test_generate_contract_still_invalid_is_flagged_not_applied(lsp: Harness) -> None:
    assert lsp.fake is not None
    bad = "intent broken( {"
    lsp.fake.enqueue(Reply(text=bad), Reply(text=bad), Reply(text=bad))
    uri = lsp.open("bad.ae", "# a broken thing\n", language_id="aethel")
    point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is False and result["applied"] is False
    assert result["attempts"] == 3  # 1 + generation.repairRounds (default 2)
    assert result["diagnostics"] and result["diagnostics"][0]["severity"] == "error"
    assert any("still has" in m.message for m in lsp.client.messages)
    assert not any(uri in (a.edit.changes or {}) for a in lsp.applied)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({}, "uri"),
        ({"uri": "file:///nowhere/missing.py", "range": SEL}, "Unknown document"),
        ({"uri": "@@", "range": {"start": {"line": -1}}}, "Unknown document"),
        ("not-an-object", "one object"),
    ],
)
async def test_bad_arguments_are_clear_errors(lsp: Harness, args: object, needle: str) -> None:
    with pytest.raises(JsonRpcException) as err:
        await lsp.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION, arguments=[args])
        )
    assert needle in str(err.value)
    assert await lsp.command(protocol.CMD_THROUGHPUT) is not None  # still serving


async def test_invalid_range_and_empty_selection(lsp: Harness) -> None:
    uri = lsp.open("a.py", PY)
    cases = [
        (
            {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 0}},
            "past the end",
        ),
        ({"start": {"line": 1, "character": 0}, "end": {"line": 0, "character": 0}}, "before"),
        ({"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "empty"),
        ({"start": {"line": "x", "character": 0}, "end": {}}, "whole number"),
    ]
    for rng, needle in cases:
        with pytest.raises(JsonRpcException) as err:
            await lsp.command(protocol.CMD_IMPROVE_SELECTION, {"uri": uri, "range": rng})
        assert needle in str(err.value), (needle, str(err.value))
        assert err.value.code == -32602


async def test_selection_uses_the_negotiated_position_encoding(lsp: Harness) -> None:
    """UTF-16 columns (the default): the emoji counts as two units."""
    assert lsp.fake is not None
    uri = lsp.open("emoji.py", "s = '\U0001f600x' + t\n")
    rng = {"start": {"line": 0, "character": 5}, "end": {"line": 0, "character": 8}}
    lsp.fake.enqueue(Reply(text="An emoji and an x."))
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": rng})
    prompt = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "\U0001f600x\n```" in prompt and "s = " not in prompt


async def test_generate_contract_repairs_a_checker_finding(lsp: Harness) -> None:
    """Parses but breaks conservation: the checker's finding goes back to the model."""
    assert lsp.fake is not None
    minting = (FIXTURES / "conservation_violation.ae").read_text()
    lsp.fake.enqueue(Reply(text=f"```aethel\n{minting}```"), Reply(text=CONTRACT))
    uri = lsp.open("mint.ae", "# pay without minting money\n", language_id="aethel")
    point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is True and result["attempts"] == 2
    repair = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "conservation violated" in repair and "bad_transfer" in repair


async def test_generate_contract_in_another_language_inserts_a_block(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text=CONTRACT))
    uri = lsp.open("notes.py", "x = 1\n# escrow released after both parties sign\ny = 2\n")
    point = {"start": {"line": 1, "character": 5}, "end": {"line": 1, "character": 5}}
    result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
    assert result["valid"] is True and result["applied"] is True
    edit = lsp.applied[-1].edit.changes[uri][0]  # type: ignore[index]
    assert edit.range.start == types.Position(2, 0)
    assert edit.new_text == f"```aethel\n{CONTRACT}\n```\n"
    prompt = lsp.fake.chat_requests()[-1]["messages"][-1]["content"]
    assert "escrow released after both parties sign" in prompt


async def test_selection_too_large_for_the_context_is_refused(lsp: Harness) -> None:
    """Never ship more than the context holds (Ollama would silently cut the start)."""
    assert lsp.fake is not None
    text = "value = compute(value) + 1  # padding padding padding\n" * 3000
    uri = lsp.open("huge.py", text)
    before = len(lsp.fake.chat_requests())
    whole = {"start": {"line": 0, "character": 0}, "end": {"line": 3000, "character": 0}}
    for command in (protocol.CMD_EXPLAIN_SELECTION, protocol.CMD_IMPROVE_SELECTION):
        with pytest.raises(JsonRpcException) as err:
            await lsp.command(command, {"uri": uri, "range": whole})
        assert err.value.code == -32602
        assert "too large" in str(err.value) and "contextSize" in str(err.value)
    assert len(lsp.fake.chat_requests()) == before


async def test_an_invalid_contract_applied_anyway_is_not_advised_to_be_applied(
    tmp_path: Path,
) -> None:
    """With `generation.applyInvalid`, the warning says what was inserted, not how to
    insert it."""
    fake = FakeOllama(token_delay=0.002)
    fake.start()
    settings = {"engine": "ollama", "model": "qwen2.5-coder:1.5b",
                "generation": {"applyInvalid": True}}
    lsp = await start_server(tmp_path, fake, editor_settings=settings)
    try:
        bad = "intent broken( {"
        fake.enqueue(Reply(text=bad), Reply(text=bad), Reply(text=bad))
        uri = lsp.open("anyway.ae", "# a broken thing\n", language_id="aethel")
        point = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
        result = await lsp.command(protocol.CMD_GENERATE_CONTRACT, {"uri": uri, "range": point})
        assert result["valid"] is False and result["applied"] is True
        warning = next(m.message for m in lsp.client.messages if "still has" in m.message)
        assert "applied" in warning and "applyInvalid" not in warning
    finally:
        await lsp.stop()
        fake.stop()
