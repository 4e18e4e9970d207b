"""Settings: schema, flattening, precedence, per-field fallback, the workspace-host rule,
and reading TOML files with line numbers (pure logic; files in tmp_path only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aethel_lsp.config import (
    FIELDS,
    ConfigSource,
    Settings,
    flatten,
    is_loopback_host,
    load_config,
    resolve,
    toml_file_layer,
    toml_key_lines,
    workspace_layer,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _layer(source: ConfigSource, **values: object):
    return flatten(values, source)


def test_every_documented_key_is_implemented_with_its_default() -> None:
    """docs/configuration.md is the contract the VS Code extension mirrors."""
    documented: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and re.fullmatch(r"`[A-Za-z.]+`", cells[0]):
            documented[cells[0].strip("`")] = cells[2]
    implemented = {f.key: f.default for f in FIELDS}
    assert set(documented) == set(implemented)
    for key, default in implemented.items():
        shown = documented[key].strip("`")
        if key == "actions.enabled":
            assert shown == "all"
        elif isinstance(default, bool):
            assert shown == str(default).lower(), key
        elif isinstance(default, tuple):
            assert shown == "[]", key
        elif isinstance(default, str):
            assert shown.strip('"') == default, key
        else:
            assert float(shown.replace("_", "")) == default, key


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    config = load_config(roots=[tmp_path], env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert config.settings == Settings()
    assert config.issues == ()
    assert config.settings.host == "http://127.0.0.1:11434"
    assert config.settings.completion_model == ""


def test_precedence_is_field_by_field() -> None:
    config = resolve(
        [
            _layer(ConfigSource.ENV, host="http://127.0.0.1:1111"),
            _layer(ConfigSource.USER_FILE, host="http://127.0.0.1:2222", model="u", maxTokens=5),
            _layer(ConfigSource.WORKSPACE_FILE, model="w", temperature=0.5),
            _layer(ConfigSource.INIT_OPTIONS, model="i", completion={"model": "ci"}),
            _layer(ConfigSource.EDITOR, **{"completion.maxTokens": 9}),
        ]
    )
    s = config.settings
    assert (s.host, s.model, s.max_tokens, s.temperature) == ("http://127.0.0.1:2222", "i", 5, 0.5)
    assert (s.completion.model, s.completion.max_tokens, s.completion_model) == ("ci", 9, "ci")
    assert config.origin("model") is ConfigSource.INIT_OPTIONS
    assert config.origin("host") is ConfigSource.USER_FILE
    assert config.origin("keepAlive") is ConfigSource.DEFAULT


def test_invalid_value_falls_back_with_one_issue() -> None:
    config = resolve(
        [
            _layer(ConfigSource.USER_FILE, maxTokens=500),
            _layer(ConfigSource.EDITOR, maxTokens="lots", temperature=7, logLevel="loud"),
        ]
    )
    s = config.settings
    assert s.max_tokens == 500  # the value below the invalid one
    assert s.temperature == 0.2 and s.log_level == "info"  # defaults
    messages = [i.message for i in config.issues]
    assert len(messages) == 3
    assert any("`maxTokens`" in m and "Using 500" in m for m in messages)
    assert any("`temperature`" in m and "between 0.0 and 2.0" in m for m in messages)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("engine", "gpu"),
        ("maxTokens", 0),
        ("maxTokens", 1.5),
        ("maxTokens", True),
        ("keepAlive", "forever"),
        ("actions.enabled", ["explain", "dance"]),
        ("completion.disabledLanguages", "markdown"),
        ("openai.baseUrl", "ftp://x"),
        ("openai.apiKeyEnv", "sk-abc def"),
        ("host", "two words"),
        ("host", "::1:11434"),
        ("host", "http://[zz::1]:80"),
        ("inspector.enabled", "yes"),
    ],
)
def test_rejected_values(key: str, value: object) -> None:
    config = resolve([flatten({key: value}, ConfigSource.EDITOR)])
    assert len(config.issues) == 1 and config.issues[0].key == key
    assert config.origin(key) is ConfigSource.DEFAULT


def test_accepted_conversions() -> None:
    s = resolve(
        [_layer(ConfigSource.EDITOR, keepAlive=300, maxTokens=64.0, actions={"enabled": []})]
    ).settings
    assert s.keep_alive == "300" and s.keep_alive_value == 300
    assert s.max_tokens == 64
    assert s.actions.enabled == () and not s.actions.is_enabled("explain")
    assert Settings().keep_alive_value == "30m"


def test_unknown_keys_warn_with_a_hint_and_editor_nulls_are_unset() -> None:
    config = resolve(
        [
            flatten({"maxToken": 3, "trace": {"server": "verbose"}}, ConfigSource.EDITOR),
            flatten({"model": None, "temperature": 0.7}, ConfigSource.EDITOR),
        ]
    )
    (issue,) = config.issues
    assert issue.severity == "warning" and "Did you mean `maxTokens`?" in issue.message
    assert config.settings.temperature == 0.7 and config.settings.model == ""


def test_workspace_host_rule() -> None:
    remote = "https://gpu.example.com"
    refused = resolve(
        [
            _layer(ConfigSource.USER_FILE, host="http://127.0.0.1:5555"),
            _layer(ConfigSource.WORKSPACE_FILE, host=remote, allowRemoteHostFromWorkspace=True),
        ]
    )
    assert refused.settings.host == "http://127.0.0.1:5555"  # the user's own value
    assert refused.origin("host") is ConfigSource.USER_FILE
    keys = sorted(i.key or "" for i in refused.issues)
    assert keys == ["allowRemoteHostFromWorkspace", "host"]

    allowed = resolve(
        [
            _layer(ConfigSource.USER_FILE, allowRemoteHostFromWorkspace=True),
            _layer(ConfigSource.WORKSPACE_FILE, host=remote, openai={"baseUrl": remote + "/v1"}),
        ]
    )
    assert allowed.settings.host == remote and allowed.issues == ()
    assert allowed.settings.openai.base_url == remote + "/v1"

    loopback = resolve([_layer(ConfigSource.WORKSPACE_FILE, host="localhost:9999")])
    assert loopback.settings.host == "localhost:9999" and loopback.issues == ()

    editor = resolve([_layer(ConfigSource.EDITOR, host=remote)])  # the user's own choice
    assert editor.settings.host == remote and editor.issues == ()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (":11434", True),
        ("127.0.0.1:11434", True),
        ("http://[::1]:8000/v1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("http://10.0.0.5:11434", False),
        ("https://ollama.example.com", False),
        ("evil.localhost.example.com", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_toml_key_lines_tables_and_dotted_keys() -> None:
    text = (
        "# comment\n"
        'model = "a"\n'
        "completion.maxTokens = 5\n"
        "[timeouts]\n"
        "connectMs = 10 # trailing\n"
        "[[array.table]]\n"
        "x = 1\n"
    )
    lines = toml_key_lines(text)
    assert lines["model"] == 2
    assert lines["completion.maxTokens"] == 3
    assert lines["timeouts"] == 4 and lines["timeouts.connectMs"] == 5
    assert "array.table.x" not in lines and "x" not in lines


def test_toml_file_issues_point_at_lines(tmp_path: Path) -> None:
    path = tmp_path / "aethel.toml"
    path.write_text('model = "m"\n\n[completion]\nmaxTokens = "many"\n')
    layer = toml_file_layer(path, ConfigSource.WORKSPACE_FILE)
    assert layer is not None
    (issue,) = resolve([layer]).issues
    assert (issue.path, issue.line, issue.key) == (path, 4, "completion.maxTokens")

    path.write_text('model = "m"\nmaxTokens = \n')
    broken = toml_file_layer(path, ConfigSource.WORKSPACE_FILE)
    assert broken is not None and broken.values == {}
    (issue,) = broken.issues
    assert issue.line == 2 and "not valid TOML" in issue.message


def test_workspace_prefers_aethel_toml_then_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.aethel-lsp]\nmodel = "py"\n'
        "[tool.aethel-lsp.completion]\nenabled = false\n"
    )
    layer = workspace_layer(tmp_path)
    assert layer is not None and dict(layer.values) == {
        "model": "py",
        "completion.enabled": False,
    }
    assert layer.lines["model"] == 4 and layer.lines["completion.enabled"] == 6
    (tmp_path / "aethel.toml").write_text('model = "ae"\n')
    layer = workspace_layer(tmp_path)
    assert layer is not None and dict(layer.values) == {"model": "ae"}
    (tmp_path / "aethel.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert workspace_layer(tmp_path) is None


def test_load_config_reads_every_source(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg" / "aethel-lsp"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text('model = "user"\ntemperature = 0.9\n')
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aethel.toml").write_text('model = "ws"\n')
    config = load_config(
        roots=[root],
        init_options={"maxTokens": 7},
        editor={"keepAlive": "1h"},
        env={"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "OLLAMA_HOST": ":1234"},
    )
    s = config.settings
    assert (s.host, s.model, s.temperature, s.max_tokens, s.keep_alive) == (
        ":1234",
        "ws",
        0.9,
        7,
        "1h",
    )
    assert set(config.files) == {cfg / "config.toml", root / "aethel.toml"}


# Every spelling a repository might use to send code elsewhere while looking local.
@pytest.mark.parametrize(
    "host",
    [
        "'http://192.0.2.1:11434'",
        "[::ffff:10.0.0.1]",
        "http://[::ffff:10.0.0.1]:11434",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.0.0.1@evil:11434",
        "localhost.evil.example",
        "localhost.",
        "127.0.0.1.",
        "LOCALHOST",
        " http://192.0.2.1:11434",
        "http://127.0.0.%31:11434",
        "0.0.0.0",
    ],
)
def test_workspace_host_spellings_are_refused(host: str) -> None:
    config = resolve([_layer(ConfigSource.WORKSPACE_FILE, host=host)])
    assert config.settings.host == "http://127.0.0.1:11434"
    (issue,) = config.issues
    assert issue.key == "host" and issue.source is ConfigSource.WORKSPACE_FILE

    as_base_url = resolve(
        [_layer(ConfigSource.WORKSPACE_FILE, openai={"baseUrl": "http://" + host.strip("'")})]
    )
    assert as_base_url.settings.openai.base_url == ""


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("openai", "apiKeyEnv", "AWS_SECRET_ACCESS_KEY"),
        ("embedded", "modelPath", "/etc/shadow"),
    ],
)
def test_workspace_may_not_choose_secrets_or_files(table: str, key: str, value: str) -> None:
    config = resolve(
        [
            _layer(ConfigSource.USER_FILE, allowRemoteHostFromWorkspace=True),
            _layer(ConfigSource.WORKSPACE_FILE, **{table: {key: value}}),
        ]
    )
    assert config.settings.openai.api_key_env == ""
    assert config.settings.embedded.model_path == ""
    (issue,) = config.issues
    assert issue.key == f"{table}.{key}" and issue.severity == "warning"
    assert f"`{key} = ...` under `[{table}]`" in issue.message
    assert "user config" in issue.message

    user = resolve([_layer(ConfigSource.USER_FILE, **{table: {key: value}})])
    assert user.issues == ()


def test_machine_scoped_prefixes() -> None:
    from aethel_lsp.config.schema import is_user_only

    assert is_user_only("providers.local.apiKeyEnv") and is_user_only("fallback")
    assert not is_user_only("completion.model")
