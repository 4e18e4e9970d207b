"""Providers through the CLI as a new user runs it: a real `aethel-lsp` process, a user
config with providers, and fake endpoints (OpenAI-compatible cluster, Anthropic) standing in
for hosted APIs.  Checks the pinned `--json` shapes of issue 19."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import CHAT, GENERATE_KEYS, ok_json, one_error_line, run_cli
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.hosted import Fault, Reply
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI

KEY = "sk-ant-e2e-secret"


@pytest.fixture
def cluster() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(models=("coder",)) as gpu1, FakeOpenAI(models=("coder",)) as gpu2:
        yield gpu1, gpu2


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


def configure(env: dict[str, str], ollama: str, gpus: tuple[FakeOpenAI, FakeOpenAI],
              claude: FakeAnthropic, extra: str = "") -> dict[str, str]:
    config = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'''
host = "{ollama}"
engine = "ollama"
fallback = ["local", "team", "claude"]
budget = {{ dailyUsd = 2.0 }}
{extra}
[providers.team]
kind = "openai"
hosts = ["{gpus[0].url}/v1", "{gpus[1].url}/v1"]
model = "coder"
requestsPerMinute = 120

[providers.claude]
kind = "anthropic"
hosts = ["{claude.url}"]
apiKeyEnv = "E2E_ANTHROPIC_KEY"
model = "claude-haiku-5-5"
prices = {{ "claude-haiku-5-5" = {{ input = 1.0, output = 5.0 }} }}
''')
    return {**env, "E2E_ANTHROPIC_KEY": KEY}


def test_generate_json_with_provider_and_cost(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    claude.enqueue(Reply(text="def f(): pass", input_tokens=1000, output_tokens=200))
    out = ok_json(run_cli(env, "generate", "write f", "--provider", "claude", "--json"))
    assert set(out) == GENERATE_KEYS
    assert out["provider"] == "claude" and out["model"] == "claude/claude-haiku-5-5"
    assert out["costUsd"] == pytest.approx((1000 * 1.0 + 200 * 5.0) / 1e6)
    assert out["fallbackFrom"] == []
    sent = claude.requests_to("/v1/messages")[0]
    assert "temperature" not in sent.json and sent.headers["anthropic-version"] == "2026-10-21"
    local = ok_json(run_cli(env, "generate", "hi", "--model", CHAT, "--json"))
    assert (local["provider"], local["costUsd"], local["fallbackFrom"]) == ("local", None, [])


def test_local_offline_falls_back_and_says_why(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    fake_ollama.go_offline()
    cluster[0].go_offline()
    cluster[1].inject(Fault.http(503, message="queue full"), path="/v1/chat/completions",
                      times=10)
    out = ok_json(run_cli(env, "generate", "hi", "--model", CHAT, "--json"))
    assert out["provider"] == "claude" and out["model"] == "claude/claude-haiku-5-5"
    assert [f["provider"] for f in out["fallbackFrom"]] == ["local", "team"]
    assert "Ollama is not running" in out["fallbackFrom"][0]["reason"]
    assert "team" in out["fallbackFrom"][1]["reason"]
    assert KEY not in str(out)


def test_local_offline_falls_back_without_a_model_named(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    """docs/engines.md's `aethel-lsp generate "hi" --json`: no `--model`, no `model` set, so
    the local engine cannot even be asked which model to use; the chain still serves."""
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    fake_ollama.go_offline()
    cluster[0].go_offline()
    cluster[1].go_offline()
    out = ok_json(run_cli(env, "generate", "hi", "--json"))
    assert out["provider"] == "claude" and out["model"] == "claude/claude-haiku-5-5"
    assert [f["provider"] for f in out["fallbackFrom"]] == ["local", "team"]
    assert "Ollama is not running" in out["fallbackFrom"][0]["reason"]


def test_stats_json_has_costs(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    claude.enqueue(Reply(text="x", input_tokens=1000, output_tokens=0))
    ok_json(run_cli(env, "generate", "x", "--provider", "claude", "--json"))
    ok_json(run_cli(env, "generate", "x", "--model", CHAT, "--json"))
    stats = ok_json(run_cli(env, "stats", "--json"))
    assert stats["claude/claude-haiku-5-5"]["costUsd"] == pytest.approx(0.001)
    assert stats[CHAT]["costUsd"] is None
    assert stats["totalCostUsd"] == pytest.approx(0.001)


def test_budget_refuses_paid_requests(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    config = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.write_text(config.read_text().replace("dailyUsd = 2.0", "dailyUsd = 0.0005"))
    claude.enqueue(Reply(text="x", input_tokens=1000, output_tokens=0))
    ok_json(run_cli(env, "generate", "x", "--provider", "claude", "--json"))  # $0.001
    line = one_error_line(run_cli(env, "generate", "x", "--provider", "claude", "--json"))
    assert "daily budget of $0.000500 is spent" in line
    assert len(claude.requests_to("/v1/messages")) == 1


def test_status_json_lists_providers_and_endpoint_health(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    cluster[1].go_offline()
    status = ok_json(run_cli(env, "status", "--json"))
    by_name = {p["name"]: p for p in status["providers"]}
    assert set(by_name) == {"team", "claude"}
    assert by_name["team"]["kind"] == "openai" and by_name["claude"]["kind"] == "anthropic"
    assert [e["health"] for e in by_name["team"]["endpoints"]] == ["healthy", "unhealthy"]
    assert by_name["team"]["endpoints"][0]["url"] == f"{cluster[0].url}/v1"
    only = ok_json(run_cli(env, "status", "--provider", "claude", "--json"))
    assert only["engine"] == "anthropic" and only["available"] is True
    assert [p["name"] for p in only["providers"]] == ["claude"]


def test_models_with_provider_are_named_as_chosen(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str]) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    models = ok_json(run_cli(env, "models", "--provider", "claude", "--json"))
    assert "claude/claude-haiku-5-5" in [m["name"] for m in models]
    team = ok_json(run_cli(env, "models", "--provider", "team", "--json"))
    assert [m["name"] for m in team] == ["team/coder"]
    line = one_error_line(run_cli(env, "models", "--provider", "nosuch", "--json"))
    assert "no provider named 'nosuch'" in line


def test_workspace_providers_are_ignored(
        fake_ollama: FakeOllama, cluster: tuple[FakeOpenAI, FakeOpenAI], claude: FakeAnthropic,
        isolated_env: dict[str, str], tmp_path: Path) -> None:
    env = configure(isolated_env, fake_ollama.url, cluster, claude)
    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "aethel.toml").write_text('fallback = ["claude"]\n')
    result = run_cli(env, "doctor", "--workspace", str(workspace), "--no-probe", "--json")
    assert "`fallback` is ignored" in result.stdout + result.stderr
