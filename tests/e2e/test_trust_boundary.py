"""End to end: a repository, a request or an upstream must never move code or secrets.

Each attack of issue 13 against the real server process: host spellings in a workspace
file (a trap fake proves no request reaches the spelled host), a workspace choosing the
API key variable or the model file, command URIs outside the workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.conftest import isolated_environ
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Fault, Reply

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
            assert any(f"`{key}` in {toml} (line " in m and how in m and "user config" in m
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


# -- a malicious upstream echoes the key ------------------------------------------------

KEY = "sk-proj-Zq81x7Lr3Wm5Np0Tt4Vb9Kc2"


def _upstream_faults() -> list[tuple[Fault, str | None]]:
    """Every way an upstream answer can carry the key into one of our messages."""
    return [
        (Fault.malformed(line=f"oops Authorization: Bearer {KEY} <html>"), None),
        (Fault.malformed(after_tokens=2, line=f"{'x' * 100} {KEY}"), None),  # cut at 120
        (Fault.http_error(401, f"invalid key {KEY}"), None),
        (Fault.http_error(500, f"<pre>{KEY}</pre>"), None),
        (Fault.error_line(after_tokens=1, message=f"upstream echo {KEY}"), None),
        (Fault.server_error(f"boom {KEY}"), "/v1/models"),
    ]


def _leaks(texts: list[str]) -> list[str]:
    return [t for t in texts if KEY in t or KEY[:12] in t]


def _client_texts(lsp: Harness) -> list[str]:
    texts = [m.message for m in lsp.client.log_messages + lsp.client.messages]
    for reports in lsp.client.progress_reports.values():
        texts.append(repr(reports))
        texts.append("".join(getattr(r, "message", None) or "" for r in reports))  # streamed
    texts += [repr(s) for s in lsp.statuses] + [repr(a) for a in lsp.applied]
    return texts


def _state_files(env: dict[str, str]) -> list[str]:
    state = Path(env["AETHEL_LSP_STATE_DIR"])
    return [p.read_bytes().decode(errors="replace") for p in state.rglob("*") if p.is_file()]


@pytest.mark.parametrize("backend", ["openai", "ollama"])
async def test_an_echoed_key_appears_nowhere(
    tmp_path: Path, backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = _fake(api_key=KEY if backend == "openai" else None)
    settings = (
        f'engine = "openai"\n[openai]\nbaseUrl = "{fake.url}/v1"\napiKeyEnv = "MY_KEY"\n'
        if backend == "openai" else f'engine = "ollama"\nhost = "{fake.url}"\n'
    )
    lsp = await start_server(
        tmp_path,
        fake,
        extra_env={"MY_KEY": KEY, "OLLAMA_API_KEY": KEY},
        user_config='model = "llama3.2"\n[inspector]\nenabled = true\n' + settings,
    )
    try:
        uri = lsp.open("a.py", PY)
        results: list[str] = []
        for fault, path in _upstream_faults():
            fake.inject(fault, path=path or _chat_path(backend), times=3)
            for command in (protocol.CMD_EXPLAIN_SELECTION, protocol.CMD_IMPROVE_SELECTION):
                try:
                    results.append(repr(await lsp.command(command, {"uri": uri, "range": SEL})))
                except JsonRpcException as exc:
                    results.append(f"{exc.code} {exc}")
            results.append(repr(await lsp.command(protocol.CMD_DOCTOR, {})))
            results.append(repr(await lsp.command(protocol.CMD_MODEL_STATUS)))
            fake.clear()
        lsp.fake = None  # keep the fake running for the echo below
        split = ["it is ", KEY[:6], KEY[6:15], KEY[15:], " enjoy"]  # one key, three tokens
        fake.enqueue(Reply(text=f"here it is: {KEY} enjoy"), Reply(text=f"{KEY}"),
                     Reply(tokens=split, token_delay=0.08), Reply(tokens=split))
        for command in (protocol.CMD_EXPLAIN_SELECTION, protocol.CMD_IMPROVE_SELECTION) * 2:
            results.append(repr(await lsp.command(command, {"uri": uri, "range": SEL})))
        assert any("REDACTED" in r for r in results)
        assert _leaks(results) == []
        assert _leaks(_client_texts(lsp)) == []
        assert _leaks(_state_files(lsp.env)) == []
        _assert_private(Path(lsp.env["AETHEL_LSP_STATE_DIR"]))
    finally:
        await lsp.stop()
        fake.stop()
    captured = capfd.readouterr()
    assert _leaks([captured.out, captured.err]) == []


def _assert_private(state: Path) -> None:
    """Usage statistics, the inspector ring, explanations, doctor reports: the user's only."""
    paths = [state, *state.rglob("*")]
    assert any(p.name == "inspector.sqlite3" for p in paths)
    assert any(p.suffix == ".md" for p in paths)
    for path in paths:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def _chat_path(backend: str) -> str:
    return "/v1/chat/completions" if backend == "openai" else "/api/chat"


def test_cli_never_prints_an_echoed_key(tmp_path: Path) -> None:
    fake = _fake(api_key=KEY)
    env = isolated_environ(tmp_path / "env", {"MY_KEY": KEY})
    config = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'engine = "openai"\nmodel = "llama3.2"\n[openai]\nbaseUrl = "{fake.url}/v1"\n'
        'apiKeyEnv = "MY_KEY"\n', encoding="utf-8")
    outputs: list[str] = []
    try:
        runs = [(fault, path, ["generate", "hello"]) for fault, path in _upstream_faults()]
        runs += [(fault, path, argv) for fault, path in _upstream_faults()[2:4]
                 for argv in (["doctor"], ["status"], ["doctor", "--json"])]
        for fault, path, args in runs:
            fake.inject(fault, path=path, times=10)
            done = subprocess.run(
                [sys.executable, "-m", "aethel_lsp", *args], env=env, cwd=tmp_path,
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            outputs += [done.stdout, done.stderr]
            fake.clear()
    finally:
        fake.stop()
    assert any("REDACTED" in text for text in outputs)
    assert _leaks(outputs) == []
    assert _leaks(_state_files(env)) == []
