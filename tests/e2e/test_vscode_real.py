"""The VS Code extension in a REAL VS Code: code-server 4.100.3 (VS Code 1.100.3) in headless
chromium, driven like a person would (keys, palette, light bulb, buttons), against the real
server and the fake Ollama. Assertions are on what the workbench shows (DOM) and on what the
fake Ollama received.

One window for the module; the tests run in order and build on each other (the Remote-settings
tests, which restart the server and reload the window, come last). A failing test keeps a
screenshot under the session's tmp dir and prints its path.

Run alone: `tests/e2e/vscode_real/install.sh && .venv/bin/python -m pytest -m vscode_real -q`
(the install takes about a minute once, then seconds; it caches code-server in
~/.cache/aethel-lsp-ci). Without the install the tests skip with that hint, except in CI
(CI=true), where a missing install fails them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.vscode_real_harness import (
    ROOT,
    STATUS_ID,
    VsCodeSession,
    build_vsix,
    install_hint,
    missing_install,
    session_environ,
)
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CODER

pytestmark = pytest.mark.vscode_real

AUTO_MODEL = CODER.name  # what the server picks with `aethel.model` unset
SET_MODEL = "llama3.2:latest"
FIM_MODEL = "tinyfim:1b"  # `aethel.completion.model`: inline completion only

CONTRACT = (ROOT / "tests" / "fixtures" / "aethel" / "examples" / "transfer.ae").read_text()
DRIFT = (ROOT / "tests" / "fixtures" / "aethel" / "examples" / "drift.ae").read_text()
COMMENT = "# transfer with a 1% fee to the treasury"  # new.ae: the last line, no newline
BEST_COMMENT = "# move an amount between two accounts\n"  # best.ae: for the distiller
SAMPLE_PY = "def total(items):\n    return \n"
EXPLANATION = (
    "This intent moves amount from one account to another. The guard requires a positive "
    "amount and enough funds, and the verify block states the new balances, so the total "
    "supply is conserved."
)
MENU_EXPLANATION = "The transfer intent keeps the total supply constant while moving funds."
SLOW_TEXT = " ".join(["word"] * 300)
IMPROVED_LINE = "        amount <= from_balance;"  # contract.ae line 5, rewritten
COMPLETION = "sum(item.price for item in items)"
METRICS_FOOTER = r"\d+ tokens · [\d.]+ s · [\d.]+ tok/s · "


def _required() -> None:
    reason = missing_install()
    if reason is None:
        return
    message = f"real VS Code suite: {reason}; {install_hint()}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI must run it)", pytrace=False)
    pytest.skip(message)


def _wrapper(path: Path, marker: Path | None = None) -> Path:
    """`aethel.server.command`: a script that starts this checkout's server (and leaves a mark)."""
    mark = f"touch '{marker}'\n" if marker is not None else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!/bin/sh\n{mark}PYTHONPATH='{ROOT}' exec '{sys.executable}' -m aethel_lsp \"$@\"\n"
    )
    path.chmod(0o755)
    return path


def _user_settings(**extra: Any) -> dict[str, Any]:
    return {
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.editor.enablePreview": False,
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "telemetry.telemetryLevel": "off",
        # Settings are edited by inserting text: no auto-closed brackets or re-indenting.
        "editor.autoClosingBrackets": "never",
        "editor.autoClosingQuotes": "never",
        "editor.autoIndent": "none",
        # Keep the suggest widget out of the ghost-text test.
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "aethel.completion.model": FIM_MODEL,
        **extra,
    }


class Window:
    """The session plus shorthands for the driver."""

    def __init__(self, session: VsCodeSession, fake: FakeOllama, wrapper: Path) -> None:
        self.session = session
        self.fake = fake
        self.wrapper = wrapper
        self.user: dict[str, Any] = {}
        self.remote: dict[str, Any] = {}

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.session.driver is not None
        return self.session.driver.call(op, **args)

    def status(self) -> dict[str, str]:
        items = self("statusBar")
        return next((i for i in items if i["id"] == STATUS_ID), {"text": "", "label": ""})

    def wait_status(self, pattern: str, timeout_ms: int = 60000) -> dict[str, str]:
        item: dict[str, str] = self("waitStatus", id=STATUS_ID, pattern=pattern, timeout=timeout_ms)
        return item

    def edit_settings(self, scope: str, values: dict[str, Any]) -> None:
        """Through VS Code's own settings.json editor, as a person would."""
        self("editSettingsJson", scope=scope, text=json.dumps(values))
        if scope == "user":
            self.user = dict(values)
        else:
            self.remote = dict(values)

    def select_lines(self, first: int, last: int) -> None:
        """Lines `first`..`last` (1-based), whole."""
        self("gotoLine", line=first, column=1)
        self("press", keys=["Shift+ArrowDown"] * (last - first + 1))

    def log(self) -> str:
        return self.session.extension_log()


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Window]:
    _required()
    work = tmp_path_factory.mktemp("vscode-real")
    workspace = work / "workspace"
    workspace.mkdir()
    (workspace / "contract.ae").write_text(CONTRACT)
    (workspace / "drift.ae").write_text(DRIFT)
    (workspace / "new.ae").write_text(COMMENT)
    (workspace / "best.ae").write_text(BEST_COMMENT)
    (workspace / "sample.py").write_text(SAMPLE_PY)
    wrapper = _wrapper(work / "bin" / "aethel-lsp-wrapper")
    vsix = build_vsix(work / "aethel-lsp.vsix")
    with FakeOllama(token_delay=0.03) as fake:
        fake.add_model(CODER.renamed(FIM_MODEL))
        fake.set_reply(FIM_MODEL, Reply(text=COMPLETION))
        session = VsCodeSession(
            work=work, workspace=workspace, user_data=work / "user-data", env=session_environ(work)
        )
        win = Window(session, fake, wrapper)
        win.remote = {"aethel.server.command": str(wrapper), "aethel.host": fake.url}
        # `aethel.model` set at start: it would have gone into initializationOptions.
        win.user = _user_settings(**{"aethel.model": SET_MODEL, "aethel.completion.enabled": False})
        session.write_settings(session.remote_settings, win.remote)
        session.write_settings(session.user_settings, win.user)
        session.install_extension(vsix)
        try:
            session.start()
            assert session.driver is not None
            shots = session.driver.screenshot_dir
            print(f"\nreal VS Code: {work}; screenshots of failures: {shots}")
            yield win
        finally:
            session.stop()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before and "window" in request.fixturenames:
        win: Window = request.getfixturevalue("window")
        driver = win.session.driver
        if driver is not None:
            path = driver.screenshot(request.node.name)
            # Past pytest's capture: the path is shown whatever the options.
            stderr = sys.__stderr__
            if stderr is not None:
                stderr.write(f"\n[vscode_real] screenshot of {request.node.name}: {path}\n")


def _wait(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -------------------------------------------------------------------------- activation


def test_activates_with_remote_settings_and_shows_the_set_model(window: Window) -> None:
    """Machine settings (server command, host) from the Remote settings, as VS Code wants."""
    status = window.wait_status(re.escape(SET_MODEL), 90000)
    assert window.fake.url in status["label"], status
    assert f"Starting the language server: {window.wrapper}" in window.log()


def test_a_reset_setting_applies_without_restart(window: Window) -> None:
    """Issue 16: `initializationOptions` kept the start value forever; now resets apply."""
    user = {k: v for k, v in window.user.items() if k != "aethel.model"}
    window.edit_settings("user", user)
    window.wait_status("no model", 30000)
    assert window.log().count("Starting the language server") == 1  # no restart


def test_diagnostics_on_an_aethel_file(window: Window) -> None:
    window("openFile", name="drift.ae")
    squiggles = _wait(lambda: window("squiggles")["error"] > 0 and window("squiggles"), "squiggles")
    assert squiggles["error"] >= 3, squiggles
    problems = next(i for i in window("statusBar") if i["id"] == "status.problems")
    assert re.search(r"Errors: [1-9]", problems["label"]), problems


# -------------------------------------------------------------------------- explanations


def test_explain_streams_into_a_panel_then_shows_the_final_text(window: Window) -> None:
    window.fake.enqueue(Reply(text=EXPLANATION, token_delay=0.06), model=AUTO_MODEL)
    window("openFile", name="contract.ae")
    window.select_lines(2, 4)
    window("command", title="Aethel: Explain selection")
    live = window("waitPanel", field="text", pattern="^This intent", timeout=30000)
    assert live["streaming"] and live["stopVisible"], live
    assert live["footer"] == "Generating…", live
    final = window("waitPanel", field="footer", pattern=METRICS_FOOTER + re.escape(AUTO_MODEL))
    assert final["text"].strip() == EXPLANATION, final
    assert final["title"] == "Explanation: contract.ae:2-4", final
    assert not final["stopVisible"] and not final["streaming"], final


def test_status_bar_shows_the_model_the_server_picked(window: Window) -> None:
    """Issue 16: with `aethel.model` unset the status said "no model" after generating.

    The server's `aethel/status` names the model it picked once used (or the extension
    remembers it from the generation's metrics); either way the status bar shows it.
    """
    status = window.wait_status(re.escape(AUTO_MODEL), 15000)
    assert f"Model: `{AUTO_MODEL}`" in status["label"], status


def test_explain_from_the_light_bulb_reuses_the_tab_with_the_same_title(window: Window) -> None:
    window.fake.enqueue(Reply(text=MENU_EXPLANATION), model=AUTO_MODEL)
    window("openFile", name="contract.ae")
    window.select_lines(2, 4)
    titles = window("codeActions")
    window("pickCodeAction", title="Explain")
    final = window("waitPanel", field="text", pattern=re.escape(MENU_EXPLANATION))
    final = window("waitPanel", field="footer", pattern=METRICS_FOOTER + re.escape(AUTO_MODEL))
    assert final["title"] == "Explanation: contract.ae:2-4", (final, titles)
    assert window("panels") == ["Explanation: contract.ae:2-4"]  # one tab, reused
    tabs = [t["title"] for t in window("tabs") if t["title"].startswith("Explanation")]
    assert len(tabs) == 1, tabs


def test_stop_keeps_what_arrived_and_closes_the_stream(window: Window) -> None:
    window.fake.enqueue(Reply(text=SLOW_TEXT, token_delay=0.05), model=AUTO_MODEL)
    streams_before = len(window.fake.streams)
    window("openFile", name="contract.ae")
    window.select_lines(2, 3)
    window("command", title="Aethel: Explain selection")
    window("waitPanel", field="text", pattern=r"word word word", timeout=30000)
    window("clickPanel", id="stop")
    stopped = window("waitPanel", field="footer", pattern="^Stopped\\.$")
    assert "(stopped)" in stopped["text"] and not stopped["stopVisible"], stopped
    stream = _wait(
        lambda: next((s for s in window.fake.streams[streams_before:] if s.finished), None),
        "the stream to end",
    )
    assert stream.closed_early and stream.tokens_sent < len(SLOW_TEXT.split()), stream
    time.sleep(1.0)  # a late log line would come now
    # Issue 16: Stop sent two cancels; the second logged "[error] Ignoring work done progress
    # cancel for unknown token". (pygls also logs "Cancel notification for unknown message id"
    # when VS Code cancels a request that already finished, e.g. code actions: not Stop's.)
    spurious = [line for line in window.log().splitlines() if "work done progress cancel" in line]
    assert spurious == [], spurious


# -------------------------------------------------------------------------- edits


def test_light_bulb_fix_shows_a_notification_with_cancel(window: Window) -> None:
    """Issue 16: raw streamed tokens in the status bar and no Cancel; now a notification."""
    window("command", title="View: Close All Editors")
    window.fake.enqueue(Reply(text=SLOW_TEXT, token_delay=0.05), model=AUTO_MODEL)
    streams_before = len(window.fake.streams)
    window("openFile", name="drift.ae")
    window("gotoLine", line=5, column=9)
    titles = window("codeActions")
    window("pickCodeAction", title="Fix with AI")
    note = window("waitNotification", pattern="Aethel: .*(Fix|fix)", timeout=30000)
    assert "Cancel" in note["buttons"], (note, titles)
    time.sleep(1.5)  # tokens are streaming now
    texts = " ".join(i["text"] for i in window("statusBar"))
    assert "word" not in texts, texts  # the generated text is not in the status bar
    window("clickNotificationButton", pattern="Aethel: .*(Fix|fix)", button="Cancel")
    window("waitNoNotification", pattern="Aethel: .*(Fix|fix)", timeout=15000)
    stream = _wait(
        lambda: next((s for s in window.fake.streams[streams_before:] if s.finished), None),
        "the stream to end",
    )
    assert stream.closed_early, stream
    lines = window("editorLines")
    assert lines[4] == "        refund = order.total;", lines  # nothing applied


def test_light_bulb_improve_applies_the_edit(window: Window) -> None:
    """An edit the checker accepts (the server checks Aethel rewrites before applying)."""
    window.fake.enqueue(Reply(text=IMPROVED_LINE.strip()), model=AUTO_MODEL)
    window("openFile", name="contract.ae")
    window("gotoLine", line=5, column=9)
    window("press", keys=["Shift+End"])
    window("codeActions")
    window("pickCodeAction", title="Improve")
    window("waitNotification", pattern="Aethel: Improving", timeout=15000)
    lines = window("waitEditorText", pattern=re.escape(IMPROVED_LINE.strip()), timeout=30000)
    assert lines[4] == IMPROVED_LINE, lines
    assert lines[3:6:2] == ["        amount > 0;", "        old_from_balance == from_balance;"]


def test_generate_from_a_comment_on_the_last_line(window: Window) -> None:
    """Issue 16: the contract was glued onto the comment (5 syntax errors)."""
    window.fake.enqueue(Reply(text=CONTRACT), model=AUTO_MODEL)
    window("openFile", name="new.ae")
    window("gotoLine", line=1, column=5)
    window("command", title="Aethel: Generate Aethel contract")
    lines = window("waitEditorText", pattern=r"^intent transfer\(", timeout=30000)
    assert lines[0] == COMMENT, lines
    assert lines[1] == CONTRACT.splitlines()[0] or lines[1].startswith("# Move funds"), lines
    time.sleep(1.5)  # diagnostics of the new text
    assert window("squiggles")["error"] == 0, window("editorLines")


def test_distill_shows_every_candidate_with_its_verdict(window: Window) -> None:
    """Issue 17: best of N in the editor: the panel lists each candidate's verdict."""
    window.fake.enqueue(*[Reply(text=CONTRACT)] * 4, model=AUTO_MODEL)
    window("command", title="View: Close All Editors")
    window("openFile", name="best.ae")
    window("gotoLine", line=1, column=3)
    window("command", title="Aethel: Distill Aethel contract (best of several candidates)")
    panel = window("waitPanel", field="text", pattern="Best of 2: .* chosen", timeout=60000)
    assert panel["text"].count("✓ valid") == 2, panel  # two agreed: the run stopped early
    assert "2 valid candidates agree" in panel["text"], panel
    assert "Chosen contract" in panel["text"] and "intent transfer(" in panel["text"], panel
    lines = window("waitEditorText", pattern=r"^intent transfer\(", timeout=30000)
    assert lines[0] == BEST_COMMENT.strip() and lines[1].startswith("# aethel-lsp: best of"), lines


# -------------------------------------------------------------------------- completion


def test_ghost_text_after_enabling_completion_without_restart(window: Window) -> None:
    window.edit_settings("user", {**window.user, "aethel.completion.enabled": True})
    window("openFile", name="sample.py")
    window("gotoLine", line=2, column=12)
    window("type", text="s")
    window("press", keys=["Backspace"])
    ghost = _wait(lambda: window("ghostText"), "ghost text", timeout=30)
    assert COMPLETION in ghost or ghost in COMPLETION, ghost
    fim = [r for r in window.fake.generate_requests() if r.get("model") == FIM_MODEL]
    assert fim and "suffix" in fim[-1], fim
    assert window.log().count("Starting the language server") == 1  # no restart


def test_ai_completion_item_previews_no_label_and_inserts_the_text(window: Window) -> None:
    """Issue 16: focusing "AI completion" in the suggest list showed its label as ghost text."""
    window("openFile", name="sample.py")
    window("gotoLine", line=2, column=12)
    window("press", keys=["Escape", "Control+Space"])
    focused = ""
    for _ in range(15):
        focused = window("suggestFocused")
        if focused.startswith("AI completion"):
            break
        window("press", keys=["ArrowDown"])
    assert focused.startswith("AI completion"), focused
    _wait(lambda: FIM_MODEL in window("suggestFocused"), "the item resolved by the model")
    assert "AI completion" not in window("ghostText")
    window("press", keys=["Enter"])
    lines = window("waitEditorText", pattern=re.escape(COMPLETION), timeout=15000)
    assert lines[1] == "    return " + COMPLETION, lines
    window("press", keys=["Control+z"])


# -------------------------------------------------------------------------- help


def test_how_to_install_opens_the_readme(window: Window) -> None:
    """vsce packs the README as `readme.md`: the preview of `README.md` said "cannot be found"."""
    window("command", title="Aethel: How to install the server")
    text = window("waitFrameText", pattern="How to install the server.*pipx install")
    assert "cannot be found" not in text, text
    window("command", title="View: Close All Editors")


# -------------------------------------------------------------------------- Remote settings


def test_not_found_names_the_command_and_opens_the_remote_settings(window: Window) -> None:
    missing = "/nonexistent/aethel-lsp-missing"
    window.edit_settings("remote", {**window.remote, "aethel.server.command": missing})
    window("waitNotification", pattern="server command changed", timeout=15000)
    window("clickNotificationButton", pattern="server command changed", button="Restart")
    pattern = f"`{re.escape(missing)}` was not found .*Remote settings"
    note = window("waitNotification", pattern=pattern, timeout=30000)
    assert "Open Settings" in note["buttons"], note
    window("clickNotificationButton", pattern=pattern, button="Open Settings")
    settings = window("settingsEditor", row=re.escape(missing), timeout=15000)
    assert settings["tab"].startswith("Remote"), settings
    assert "aethel.server" in settings["query"], settings
    assert any(missing in row for row in settings["rows"]), settings
    window.wait_status("stopped", 10000)


def test_remote_settings_restored_start_the_server_again(window: Window) -> None:
    window.edit_settings("remote", {**window.remote, "aethel.server.command": str(window.wrapper)})
    window("waitNotification", pattern="server command changed", timeout=15000)
    window("clickNotificationButton", pattern="server command changed", button="Restart")
    window.wait_status(re.escape(AUTO_MODEL) + "|no model", 60000)


def test_a_user_value_of_a_machine_setting_is_flagged_and_copied_to_remote(
    window: Window,
) -> None:
    """In User settings VS Code shows it at load and drops it later: we say so, and copy."""
    session = window.session
    marker = session.work / "user-command-used"
    user_wrapper = _wrapper(session.work / "bin" / "aethel-lsp-user", marker)
    session.write_settings(session.remote_settings, {"aethel.host": window.fake.url})
    session.write_settings(
        session.user_settings, {**window.user, "aethel.server.command": str(user_wrapper)}
    )
    window("reload", url=session.url)
    pattern = "aethel.server.command in your User settings is not applied in this remote window"
    note = window("waitNotification", pattern=re.escape(pattern), timeout=60000)
    assert "Copy to Remote settings" in note["buttons"], note
    window("clickNotificationButton", pattern=re.escape(pattern), button="Copy to Remote settings")
    _wait(
        lambda: session.read_settings(session.remote_settings).get("aethel.server.command")
        == str(user_wrapper),
        "the command in the Remote settings",
    )
    window.wait_status(re.escape(AUTO_MODEL) + "|no model", 60000)
    assert marker.exists()


def test_copying_a_user_host_to_remote_restarts_without_an_error(window: Window) -> None:
    """The copy used to race the running client: "Sending notification ... failed"."""
    session = window.session
    remote = session.read_settings(session.remote_settings)
    session.write_settings(session.remote_settings, {
        k: v for k, v in remote.items() if k != "aethel.host"
    })
    session.write_settings(session.user_settings, {**window.user, "aethel.host": window.fake.url})
    window("reload", url=session.url)
    pattern = "aethel.host in your User settings is not applied in this remote window"
    window("waitNotification", pattern=re.escape(pattern), timeout=60000)
    window.wait_status("offline|no model|" + re.escape(AUTO_MODEL), 60000)  # the client runs
    window("clickNotificationButton", pattern=re.escape(pattern), button="Copy to Remote settings")
    _wait(
        lambda: session.read_settings(session.remote_settings).get("aethel.host")
        == window.fake.url,
        "the host in the Remote settings",
    )
    status = window.wait_status(re.escape(AUTO_MODEL) + "|no model", 60000)
    assert window.fake.url in status["label"], status
    time.sleep(2)  # the notification would follow the restart
    assert not [n for n in window("notifications") if "failed" in n["message"]]
    assert "didChangeConfiguration failed" not in window.log()
