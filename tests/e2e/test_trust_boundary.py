"""End to end: a repository, a request or an upstream must never move code or secrets.

Each attack of issue 13 against the real server process: host spellings in a workspace
file (a trap fake proves no request reaches the spelled host), a workspace choosing the
API key variable or the model file, command URIs outside the workspace.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Reply

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


def _fake(**kwargs: object) -> FakeOllama:
    fake = FakeOllama(models=["llama3.2"], **kwargs)  # type: ignore[arg-type]
    fake.start()
    return fake


async def _explain(lsp: Harness, uri: str) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text="fine"))
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})


def _write_config(path: Path, text: str) -> None:
    """Write and move the mtime on, so the server's change check always sees it."""
    before = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text, encoding="utf-8")
    os.utime(path, (before + 2, before + 2))


# Spellings that a sloppy parser would send to the trap (all are loopback in disguise, so
# a connection would land on it), plus ones that only look local.
def _trap_spellings(port: int) -> list[str]:
    return [
        f"'http://127.0.0.1:{port}'",
        f"\\\"127.0.0.1:{port}\\\"",
        f"http://0x7f000001:{port}",
        f"2130706433:{port}",
        f"0177.0.0.1:{port}",
        f"127.1:{port}",
        f"evil@127.0.0.1:{port}",
        f"127.0.0.1@evil:{port}",
        f"localhost.:{port}",
        f"http://127.0.0.1.:{port}",
        f"LOCALHOST:{port}",
        f"http://127.0.0.%31:{port}",
        f"http://127.0.0.1 :{port}",
        f"0.0.0.0:{port}",
        f"[::ffff:10.0.0.1]:{port}",
        f"localhost.evil.example:{port}",
    ]


async def test_workspace_host_spellings_never_reach_their_host(tmp_path: Path) -> None:
    trap = _fake()
    lsp = await start_server(
        tmp_path, _fake(), editor_settings={"engine": "ollama", "model": "llama3.2"}
    )
    toml = lsp.root / "aethel.toml"
    try:
        uri = lsp.open("a.py", PY)
        for spelling in _trap_spellings(trap.port):
            _write_config(toml, f'model = "llama3.2"\nhost = "{spelling}"\n')
            served = len(lsp.fake.chat_requests()) if lsp.fake else 0
            await _explain(lsp, uri)
            assert lsp.fake is not None and len(lsp.fake.chat_requests()) == served + 1
            assert trap.requests == [], spelling
            await lsp.wait_for(
                lambda: any(
                    d.code == "host" and d.range.start.line == 1
                    for d in lsp.client.diagnostics.get(toml.as_uri(), [])
                )
            )
            shown = [m.message for m in lsp.client.messages if "`host`" in m.message]
            assert shown and "aethel.toml" in shown[-1], spelling
            lsp.client.messages.clear()
        assert trap.requests == []
    finally:
        await lsp.stop()
        trap.stop()


async def test_workspace_base_url_spelling_is_refused(tmp_path: Path) -> None:
    trap = _fake()
    lsp = await start_server(
        tmp_path,
        _fake(),
        editor_settings={"model": "llama3.2"},
        workspace_files={
            "aethel.toml": (
                f'engine = "openai"\n[openai]\nbaseUrl = "http://0x7f000001:{trap.port}"\n'
            )
        },
    )
    try:
        shown = [m.message for m in lsp.client.messages]
        assert any("`openai.baseUrl`" in m for m in shown)
        with pytest.raises(JsonRpcException) as err:  # engine = openai without a base URL
            await _explain(lsp, lsp.open("a.py", PY))
        assert "openai.baseUrl" in str(err.value)
        assert trap.requests == []
    finally:
        await lsp.stop()
        trap.stop()


async def test_workspace_may_not_choose_the_key_or_the_model_file(tmp_path: Path) -> None:
    secret = "AKIA-not-for-you-5e3b9"
    fake = _fake(api_key="user-key-123")
    lsp = await start_server(
        tmp_path,
        fake,
        extra_env={"AWS_SECRET_ACCESS_KEY": secret, "MY_KEY": "user-key-123"},
        user_config=(
            'engine = "openai"\nmodel = "llama3.2"\nallowRemoteHostFromWorkspace = true\n'
            f'[openai]\nbaseUrl = "{fake.url}/v1"\napiKeyEnv = "MY_KEY"\n'
        ),
        workspace_files={
            "aethel.toml": (
                '[openai]\napiKeyEnv = "AWS_SECRET_ACCESS_KEY"\n'
                '[embedded]\nmodelPath = "/etc/passwd"\n'
            )
        },
    )
    toml = lsp.root / "aethel.toml"
    try:
        shown = [m.message for m in lsp.client.messages]
        for key, how in (("openai.apiKeyEnv", "under `[openai]`"),
                         ("embedded.modelPath", "under `[embedded]`")):
            assert any(f"Ignored `{key}`" in m and how in m and "user config" in m
                       for m in shown), key
        lines = {d.code: d.range.start.line
                 for d in lsp.client.diagnostics.get(toml.as_uri(), [])}
        assert lines == {"openai.apiKeyEnv": 1, "embedded.modelPath": 3}
        await _explain(lsp, lsp.open("a.py", PY))  # served with the user's own key
        sent = [r.headers.get("authorization", "") for r in fake.requests]
        assert sent and all(h in ("", "Bearer user-key-123") for h in sent)
        assert not any(secret in r.raw_body.decode(errors="replace") for r in fake.requests)
    finally:
        await lsp.stop()


async def test_commands_read_only_open_or_workspace_files(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 'do-not-send'\n# more\n", encoding="utf-8")
    lsp = await start_server(
        tmp_path, _fake(), editor_settings={"engine": "ollama", "model": "llama3.2"}
    )
    (lsp.root / "link.py").symlink_to(outside / "secret.py")
    (lsp.root / "inside.py").write_text(PY, encoding="utf-8")
    assert lsp.fake is not None
    try:
        refused = [
            (outside / "secret.py").as_uri(),
            lsp.root.as_uri() + "/../outside/secret.py",
            (lsp.root / "link.py").as_uri(),
            "file:///proc/self/environ",
            "file:///etc/hostname",
        ]
        for uri in refused:
            with pytest.raises(JsonRpcException) as err:
                await _explain(lsp, uri)
            assert err.value.code == -32602, uri
            assert "Refused to read" in str(err.value) or "Unknown document" in str(err.value)
        assert lsp.fake.chat_requests() == []

        inside = (lsp.root / "inside.py").as_uri()
        await _explain(lsp, inside)  # a workspace file the editor has not opened: readable
        assert len(lsp.fake.chat_requests()) == 1
        with pytest.raises(JsonRpcException) as err:  # ... but never edited
            await lsp.command(protocol.CMD_IMPROVE_SELECTION, {"uri": inside, "range": SEL})
        assert err.value.code == -32602 and "not open in the editor" in str(err.value)
        assert lsp.applied == [] and len(lsp.fake.chat_requests()) == 1
    finally:
        await lsp.stop()
