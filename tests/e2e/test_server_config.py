"""End to end: every configuration source and its precedence, reloads, a bad value,
the workspace-host rule, and API keys kept out of every message.

What the server effectively uses is read where it matters: the JSON the fake Ollama
receives (model, options, keep_alive) and the `aethel/status` notification (host).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, full_capabilities, start_server
from tests.fakes.ollama import FakeOllama, Reply

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
CLOSED_PORT_HOST = "http://127.0.0.1:9"  # nothing listens there


async def _explain_body(lsp: Harness) -> dict[str, Any]:
    """Run one explain and return the chat request the engine received."""
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text="ok"))
    uri = lsp.open("x.py", PY)
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    body = lsp.fake.chat_requests()[-1]
    assert isinstance(body, dict)
    return body


def _fake(*extra_models: str) -> FakeOllama:
    fake = FakeOllama(models=["llama3.2", "qwen2.5-coder:1.5b", *extra_models])
    fake.start()
    return fake


async def test_each_source_and_its_precedence(tmp_path: Path) -> None:
    fake = _fake("user-model", "ws-model", "init-model", "editor-model")
    lsp = await start_server(
        tmp_path,
        fake,
        extra_env={"OLLAMA_HOST": CLOSED_PORT_HOST},  # env: lowest but the defaults
        user_config=(
            f'engine = "ollama"\nhost = "{fake.url}"\nmodel = "user-model"\n'
            'temperature = 0.3\nmaxTokens = 100\ncontextSize = 2048\nkeepAlive = "5m"\n'
        ),
        workspace_files={"aethel.toml": 'model = "ws-model"\ntemperature = 0.4\nmaxTokens = 200\n'},
        init_options={"model": "init-model", "maxTokens": 300, "keepAlive": "7m"},
        editor_settings={"model": "editor-model", "keepAlive": "9m"},
    )
    try:
        body = await _explain_body(lsp)  # reached the fake: user host beats OLLAMA_HOST
        assert body["model"] == "editor-model"  # editor > init > workspace > user
        assert body["keep_alive"] == "9m"  # editor
        assert body["options"]["num_predict"] == 300  # initializationOptions
        assert body["options"]["temperature"] == 0.4  # workspace file
        assert body["options"]["num_ctx"] == 2048  # user file
        assert lsp.statuses[-1]["host"].rstrip("/") == fake.url
    finally:
        await lsp.stop()


async def test_ollama_host_env_and_pyproject_table(tmp_path: Path) -> None:
    fake = _fake("py-model")
    lsp = await start_server(
        tmp_path,
        fake,  # OLLAMA_HOST = the fake (set by the harness)
        workspace_files={
            "pyproject.toml": '[project]\nname = "x"\n\n[tool.aethel-lsp]\n'
            'engine = "ollama"\nmodel = "py-model"\n\n[tool.aethel-lsp.timeouts]\n'
            "connectMs = 2000\n"
        },
        init_options={"aethel": {"temperature": 0.6}},  # wrapped in the section: accepted
    )
    try:
        body = await _explain_body(lsp)
        assert body["model"] == "py-model"
        assert body["options"]["num_predict"] == 1024  # default
        assert body["options"]["temperature"] == 0.6
        assert body["keep_alive"] == "30m"  # default
    finally:
        await lsp.stop()


async def test_reload_on_change_configuration_and_on_file_change(tmp_path: Path) -> None:
    fake = _fake()
    lsp = await start_server(
        tmp_path,
        fake,
        editor_settings={"engine": "ollama", "model": "llama3.2"},
        workspace_files={"aethel.toml": "maxTokens = 111\n"},
    )
    try:
        assert (await _explain_body(lsp))["model"] == "llama3.2"
        # editor settings changed: the client notifies, the server pulls them again
        lsp.client.set_configuration(
            {"engine": "ollama", "model": "qwen2.5-coder:1.5b"}, section="aethel"
        )
        lsp.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=None)
        )
        await lsp.wait_for(lambda: lsp.statuses[-1]["model"] == "qwen2.5-coder:1.5b")
        assert (await _explain_body(lsp))["model"] == "qwen2.5-coder:1.5b"
        # the server asked to watch the config files
        watched = [r for r in lsp.registrations if r.method == "workspace/didChangeWatchedFiles"]
        assert watched
        # aethel.toml changed and the client says so
        config = lsp.root / "aethel.toml"
        config.write_text("maxTokens = 222\n")
        lsp.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=config.as_uri(), type=types.FileChangeType.Changed)]
            )
        )
        await asyncio.sleep(0.2)
        assert (await _explain_body(lsp))["options"]["num_predict"] == 222
        # changed on disk with no notification at all: picked up on the next request
        config.write_text("maxTokens = 333\n")
        await asyncio.sleep(0.05)
        assert (await _explain_body(lsp))["options"]["num_predict"] == 333
    finally:
        await lsp.stop()


async def test_bad_value_message_diagnostic_and_default(tmp_path: Path) -> None:
    fake = _fake()
    toml = (
        'engine = "ollama"\nmodel = "llama3.2"\n\nmaxTokens = "lots"\n'
        "[completion]\ndebounceMinMs = -5\n"
    )
    lsp = await start_server(tmp_path, fake, workspace_files={"aethel.toml": toml})
    try:
        config_uri = (lsp.root / "aethel.toml").as_uri()
        diagnostics = await lsp.wait_for(lambda: lsp.client.diagnostics.get(config_uri))
        by_line = {d.range.start.line: d for d in diagnostics}
        assert set(by_line) == {3, 5}  # 0-based lines of maxTokens and debounceMinMs
        assert "maxTokens" in by_line[3].message and "whole number" in by_line[3].message
        assert by_line[3].severity == types.DiagnosticSeverity.Error
        assert "completion.debounceMinMs" in by_line[5].message
        shown = [m.message for m in lsp.client.messages if "maxTokens" in m.message]
        assert len(shown) == 1  # one clear message
        assert "Using 1024" in shown[0]
        body = await _explain_body(lsp)
        assert body["options"]["num_predict"] == 1024  # that field fell back to its default
        assert body["model"] == "llama3.2"  # the valid fields still apply
        # fixing the file clears the diagnostics
        (lsp.root / "aethel.toml").write_text('engine = "ollama"\nmodel = "llama3.2"\n')
        await _explain_body(lsp)
        await lsp.wait_for(lambda: list(lsp.client.diagnostics.get(config_uri, [None])) == [])
    finally:
        await lsp.stop()


async def test_workspace_host_rule(tmp_path: Path) -> None:
    fake = _fake()
    # Not loopback, yet it never leaves this machine (0.0.0.0 connects locally; port 9 is
    # closed): the remote-host rule is exercised without sending traffic anywhere.
    remote = "http://0.0.0.0:9"
    lsp = await start_server(
        tmp_path / "refused",
        fake,
        editor_settings={"engine": "ollama", "model": "llama3.2"},
        workspace_files={
            "aethel.toml": f'host = "{remote}"\nallowRemoteHostFromWorkspace = true\n'
        },
    )
    try:
        messages = [m.message for m in lsp.client.messages]
        assert any("Refused `host`" in m and remote in m for m in messages)
        assert any("allowRemoteHostFromWorkspace" in m and "ignored" in m for m in messages)
        body = await _explain_body(lsp)  # the code went to the fake (OLLAMA_HOST), not remote
        assert body["model"] == "llama3.2"
        assert lsp.statuses[-1]["host"].rstrip("/") == fake.url
    finally:
        await lsp.stop()

    fake = _fake()
    lsp = await start_server(
        tmp_path / "allowed",
        fake,
        user_config="allowRemoteHostFromWorkspace = true\n",
        editor_settings={"engine": "ollama", "model": "llama3.2"},
        workspace_files={"aethel.toml": f'host = "{remote}"\n'},
    )
    try:
        assert not any("Refused" in m.message for m in lsp.client.messages)
        await lsp.wait_for(lambda: lsp.statuses[-1]["host"].startswith("http://0.0.0.0:9"))
    finally:
        await lsp.stop()


async def test_api_key_never_in_messages(tmp_path: Path) -> None:
    secret = "sk-test-7f3a9c1e5b2d"
    lsp = await start_server(
        tmp_path,
        None,
        extra_env={"MY_LLM_KEY": secret},
        editor_settings={
            "engine": "openai",
            "model": "gpt-x",
            "openai": {"baseUrl": CLOSED_PORT_HOST + "/v1", "apiKeyEnv": "MY_LLM_KEY"},
            "timeouts": {"connectMs": 500},
        },
    )
    try:
        uri = lsp.open("k.py", PY)
        try:
            await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        except JsonRpcException as exc:
            assert secret not in str(exc)
        await lsp.command(protocol.CMD_MODEL_STATUS)
        texts = [m.message for m in lsp.client.log_messages + lsp.client.messages]
        texts += [str(s) for s in lsp.statuses]
        assert texts and not any(secret in t for t in texts)
    finally:
        await lsp.stop()


async def test_client_without_progress_or_show_document_still_gets_result(
    tmp_path: Path,
) -> None:
    fake = _fake()
    lsp = await start_server(
        tmp_path,
        fake,
        capabilities=full_capabilities(progress=False, show_document=False, watch=False),
        editor_settings={"engine": "ollama", "model": "llama3.2"},
    )
    try:
        fake.enqueue(Reply(text="A plain explanation."))
        uri = lsp.open("p.py", PY)
        result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        assert result["text"] == "A plain explanation."
        assert not lsp.client.progress_reports  # no work-done progress was created
        assert any(m.message == "A plain explanation." for m in lsp.client.messages)
    finally:
        await lsp.stop()
