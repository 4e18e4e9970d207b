"""`aethel-lsp distill` as a user runs it: the pinned JSON shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fakes.ollama import FakeOllama, Reply
from tests.unit.test_distill import BROKEN, CHAT, CODER, DESCRIPTION, PAY, fenced


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aethel_lsp", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_distill_json_and_exit_codes(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    fake_ollama.enqueue(fenced(BROKEN), model=CHAT)
    fake_ollama.enqueue(fenced(PAY), model=CODER)
    ok = run_cli(isolated_env, "distill", DESCRIPTION, "--models", f"{CHAT},{CODER}",
                 "--candidates", "2", "--json", "--host", fake_ollama.url)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert set(result) == {"best", "candidates", "explanation"}
    assert result["best"]["model"] == CODER and result["best"]["text"] == PAY

    fake_ollama.set_reply(CHAT, Reply(text=f"```aethel\n{BROKEN}\n```"))
    bad = run_cli(isolated_env, "distill", DESCRIPTION, "--models", CHAT, "-n", "2",
                  "--host", fake_ollama.url)
    assert bad.returncode == 1
    assert "No candidate of 2 passed the checker." in bad.stderr
    assert bad.stdout == ""

    human = run_cli(isolated_env, "distill", DESCRIPTION, "--models", CODER, "-n", "1",
                    "--host", fake_ollama.url)
    assert human.returncode == 0, human.stderr
    assert "intent" in human.stdout and "✓ #1" in human.stderr
    usage = run_cli(isolated_env, "distill", DESCRIPTION, "--candidates", "0")
    assert usage.returncode == 2 and "from 1 to 32" in usage.stderr


def test_cli_distill_refuses_a_description_too_long_for_the_context(
    fake_ollama: FakeOllama, isolated_env: dict[str, str]
) -> None:
    huge = "pay the payee " * 8_000  # ~110 kB (argv's limit is 128 kB): over 8k tokens
    for extra in ((), ("--json",)):
        refused = run_cli(isolated_env, "distill", huge, "--models", CODER, *extra,
                          "--host", fake_ollama.url)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error: ") and "too large" in refused.stderr
        assert "Traceback" not in refused.stderr and refused.stdout == ""
    assert fake_ollama.chat_requests() == []
