"""The redactor that guards every output, and the 0600/0700 state files."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from aethel_lsp.cli.output import Output
from aethel_lsp.engine.inspector import Inspector
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.redaction import REDACTED, Redactor, StreamRedactor
from aethel_lsp.engine.stats import UsageStats
from aethel_lsp.engine.types import ChatRequest
from aethel_lsp.paths import private_dir, write_private_text
from tests.unit.scripted_engine import ScriptedEngine

KEY = "sk-live-0123456789abcdef"


def test_known_removes_whole_and_cut_short_keys_only() -> None:
    redactor = Redactor([KEY])
    assert redactor.known(f"a {KEY} b") == f"a {REDACTED} b"
    assert redactor.known(f"line: '{KEY[:13]}'") == f"line: '{REDACTED}'"  # cut at a limit
    assert redactor.known(KEY[:7]) == KEY[:7]  # too short to be the key
    code = 'password = "hunter2"  # sk-other-key-1234567890'
    assert redactor.known(code) == code  # the user's own code is left alone
    assert Redactor([KEY]).text(code) != code  # (the inspector's stronger mode)


def test_known_value_walks_json() -> None:
    value = {"a": [KEY, {"b": f"x{KEY}"}], KEY: 1, "n": 2}
    out = Redactor([KEY]).known_value(value)
    assert KEY not in repr(out) and out["n"] == 2


def test_from_env_takes_the_configured_and_well_known_variables() -> None:
    env = {"MY_KEY": KEY, "OPENAI_API_KEY": "sk-openai-abcdefgh", "PATH": "/usr/bin"}
    redactor = Redactor.from_env(env, "MY_KEY", "")
    assert set(redactor.secrets) == {KEY, "sk-openai-abcdefgh"}
    assert not Redactor.from_env({})


def test_cli_output_redacts_every_stream() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(stdout=stdout, stderr=stderr)
    out.redactor = Redactor([KEY])
    out.line(f"table cell {KEY}")
    out.error(f"failed: {KEY}")
    out.write_text(KEY)
    out.json({"k": KEY})
    assert KEY not in stdout.getvalue() + stderr.getvalue()
    assert REDACTED in stderr.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "doctor"
    folder.mkdir(parents=True, mode=0o755)
    private_dir(folder)
    assert _mode(folder) == 0o700
    report = folder / "r.md"
    report.write_text("old")
    report.chmod(0o644)
    write_private_text(report, "new")
    assert _mode(report) == 0o600 and report.read_text() == "new"


def test_state_databases_are_private(tmp_path: Path) -> None:
    stats = UsageStats(tmp_path / "s" / "usage.sqlite3")
    stats.record("m", "ok")
    stats.flush()
    assert stats.models()
    stats.close()
    inspector = Inspector(path=tmp_path / "i" / "inspector.sqlite3")
    inspector.clear()
    inspector.close()
    for path in (tmp_path / "s" / "usage.sqlite3", tmp_path / "i" / "inspector.sqlite3"):
        assert path.exists() and _mode(path) == 0o600, path
        assert _mode(path.parent) == 0o700
        for extra in path.parent.glob(path.name + "-*"):
            assert _mode(extra) == 0o600, extra


def test_stream_redactor_finds_a_key_split_across_pieces() -> None:
    pieces = ["the key ", KEY[:3], KEY[3:11], KEY[11:], " and s", "o on"]
    stream = StreamRedactor(Redactor([KEY]))
    out = [stream.feed(p) for p in pieces] + [stream.flush()]
    assert "".join(out) == f"the key {REDACTED} and so on"
    assert out[0] == "the key " and out[-2] == "so on"  # only a possible key start waits
    assert not any(KEY[:4] in piece for piece in out)


async def test_metered_engine_streams_without_the_key() -> None:
    upstream = ScriptedEngine(manual=False, auto_tokens=lambda _r: [KEY[:5], KEY[5:] + " ok"])
    engine = MeteredEngine(upstream, None, lambda: Redactor([KEY]))
    texts = [c.text async for c in engine.stream_chat(ChatRequest(model="m", messages=()))]
    assert "".join(texts) == f"{REDACTED} ok" and not any(KEY[:5] in t for t in texts)
