"""providers / fallback / budget: typed parsing, clear issues, user-config-only scope."""

from __future__ import annotations

from pathlib import Path

from aethel_lsp.config import ConfigSource, ResolvedConfig, load_config
from aethel_lsp.config.provider_settings import BudgetSettings, Price, ProviderConfig
from aethel_lsp.config.providers import parse_provider_config, split_model

ISSUE_EXAMPLE = '''
fallback = ["local", "team", "claude"]
budget = { dailyUsd = 2.0 }

[providers.team]
kind = "openai"
hosts = ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
apiKeyEnv = "TEAM_LLM_KEY"
requestsPerMinute = 120
tokensPerMinute = 200000

[providers.claude]
kind = "anthropic"
hosts = ["https://api.anthropic.com"]
apiKeyEnv = "ANTHROPIC_API_KEY"
prices = { "claude-haiku-5-5" = { input = 1.0, output = 5.0 } }
'''


def load(tmp_path: Path, user: str, workspace: str | None = None,
         editor: object = None) -> ResolvedConfig:
    config_dir = tmp_path / "config" / "aethel-lsp"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(user)
    root = tmp_path / "ws"
    root.mkdir()
    if workspace is not None:
        (root / "aethel.toml").write_text(workspace)
    return load_config(roots=[root], editor=editor,
                       env={"XDG_CONFIG_HOME": str(tmp_path / "config"),
                            "HOME": str(tmp_path)})


def test_the_issue_example_parses(tmp_path: Path) -> None:
    resolved = load(tmp_path, ISSUE_EXAMPLE)
    config = resolved.settings.providers
    assert resolved.issues == ()
    assert config.fallback == ("local", "team", "claude")
    assert config.budget == BudgetSettings(daily_usd=2.0)
    team, claude = config.get("team"), config.get("claude")
    assert team is not None and claude is not None
    assert team.hosts == ("http://gpu1:8000/v1", "http://gpu2:8000/v1")
    assert (team.requests_per_minute, team.tokens_per_minute) == (120, 200000)
    assert claude.api_version == "2026-10-21"
    assert claude.price_for("claude-haiku-5-5") == Price(1.0, 5.0)


def test_flat_settings_are_unchanged_without_providers(tmp_path: Path) -> None:
    resolved = load(tmp_path, 'model = "qwen2.5-coder:1.5b"\n')
    assert resolved.settings.providers == ProviderConfig()
    assert resolved.settings.model == "qwen2.5-coder:1.5b"


def test_workspace_and_editor_cannot_set_providers(tmp_path: Path) -> None:
    workspace = ('fallback = ["evil"]\nbudget = { dailyUsd = 100.0 }\n'
                 '[providers.evil]\nkind = "openai"\nhosts = ["http://evil.example/v1"]\n')
    resolved = load(tmp_path, ISSUE_EXAMPLE, workspace,
                    editor={"providers": {"x": {"kind": "openai"}}})
    config = resolved.settings.providers
    assert config.get("evil") is None and config.fallback == ("local", "team", "claude")
    assert config.budget.daily_usd == 2.0
    ignored = [(i.key, i.source) for i in resolved.issues]
    assert ("fallback", ConfigSource.WORKSPACE_FILE) in ignored
    assert ("budget", ConfigSource.WORKSPACE_FILE) in ignored
    assert ("providers", ConfigSource.WORKSPACE_FILE) in ignored
    assert ("providers", ConfigSource.EDITOR) in ignored
    assert all("only your user config" in i.message
               for i in resolved.issues)


def test_bad_values_are_reported_and_dropped(tmp_path: Path) -> None:
    user = ('fallback = ["local", "nosuch"]\nbudget = { dailyUsd = -1 }\n'
            '[providers.a]\nkind = "openai"\n'
            '[providers.b]\nkind = "gemini"\n'
            '[providers.c]\nkind = "anthropic"\napiVersion = "2024-01-01"\n'
            '[providers.d]\nkind = "openai"\nhosts = ["http://h:1/v1"]\nrequestsPerMinute = 0\n'
            '[providers.e]\nkind = "openai"\nhosts = ["http://h:1/v1"]\n'
            'prices = { m = { input = "cheap", output = 1 } }\n'
            '[providers.ok]\nkind = "ollama"\nhosts = ["gpu1:11434"]\nrequestPerMinute = 5\n')
    resolved = load(tmp_path, user)
    config = resolved.settings.providers
    assert config.names == ("ok",)
    assert config.fallback == ("local",) and config.budget.daily_usd is None
    by_key = {i.key: i for i in resolved.issues}
    assert "needs `hosts`" in by_key["providers.a.hosts"].message
    assert "gemini" in by_key["providers.b.kind"].message
    assert "2026-10-21" in by_key["providers.c.apiVersion"].message
    assert ">= 1" in by_key["providers.d.requestsPerMinute"].message
    assert "cheap" in by_key["providers.e.prices.m"].message
    assert "did you mean `requestsPerMinute`" in by_key["providers.ok.requestPerMinute"].message
    assert by_key["providers.ok.requestPerMinute"].severity == "warning"
    assert "'nosuch'" in by_key["fallback"].message
    assert by_key["providers.c.apiVersion"].line == user.splitlines().index(
        'apiVersion = "2024-01-01"') + 1


def test_local_is_reserved() -> None:
    config, problems = parse_provider_config({"providers": {"local": {"kind": "ollama"}}})
    assert config.providers == () and "local" in problems[0].message


def test_split_model_names_only_known_providers() -> None:
    config, _ = parse_provider_config({"providers": {"claude": {"kind": "anthropic"}}})
    assert split_model("claude/claude-haiku-5-5", config) == ("claude", "claude-haiku-5-5")
    assert split_model("other/x", config) == (None, "other/x")
    assert split_model("qwen2.5-coder:1.5b", config) == (None, "qwen2.5-coder:1.5b")


def test_a_workspace_cannot_choose_a_hosted_providers_model(tmp_path: Path) -> None:
    user = 'model = "qwen2.5-coder:1.5b"\n' + ISSUE_EXAMPLE
    workspace = 'model = "claude/claude-opus-5-5"\n[completion]\nmodel = "team/coder"\n'
    resolved = load(tmp_path, user, workspace)
    assert resolved.settings.model == "qwen2.5-coder:1.5b"
    assert resolved.settings.completion.model == ""
    refused = {i.key for i in resolved.issues if i.message.startswith("Refused")}
    assert refused == {"model", "completion.model"}
    local = load(tmp_path / "2", user, 'model = "deepseek-coder:6.7b"\n')
    assert local.settings.model == "deepseek-coder:6.7b"  # bare names stay local
