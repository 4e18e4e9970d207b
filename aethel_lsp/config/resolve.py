"""Merge configuration layers into `Settings`, field by field, with clear issues.

Pure logic (no I/O): `loader.py` reads the files, the server feeds editor settings.
Layers arrive lowest precedence first.  A value that fails its parser is reported
once (`ConfigIssue`, pointing at the TOML line when there is one) and ignored, so the
field keeps the value of the sources below it — normally its default.  The
workspace-host rule is applied last, because it depends on the merged
`allowRemoteHostFromWorkspace` of the user's own sources.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aethel_lsp.config.provider_settings import ProviderConfig
from aethel_lsp.config.providers import MACHINE_KEYS, parse_provider_config, split_model
from aethel_lsp.config.schema import (
    FIELDS_BY_KEY,
    HOST_KEYS,
    IS_LOCAL,
    TABLES,
    InvalidValue,
    Settings,
    build_settings,
    default_values,
    is_user_only,
)
from aethel_lsp.paths import USER_CONFIG_DISPLAY


class ConfigSource(str, enum.Enum):
    """Where a value came from, lowest precedence first (the order of docs/configuration.md)."""

    DEFAULT = "default"
    ENV = "env"  # OLLAMA_HOST
    USER_FILE = "user"  # ~/.config/aethel-lsp/config.toml
    WORKSPACE_FILE = "workspace"  # aethel.toml or [tool.aethel-lsp] in pyproject.toml
    INIT_OPTIONS = "initializationOptions"
    EDITOR = "editor"  # workspace/configuration, section "aethel"

    @property
    def is_workspace(self) -> bool:
        return self is ConfigSource.WORKSPACE_FILE


# Top-level keys editor extensions use for themselves (not settings of the server).
_EDITOR_OWN_KEYS = frozenset({"trace", "server", "serverPath", "path"})


@dataclass(frozen=True)
class ConfigIssue:
    """One problem with one value: shown once to the user, and on the TOML line."""

    message: str
    source: ConfigSource
    key: str | None = None
    path: Path | None = None  # the config file, when the value came from one
    line: int | None = None  # 1-based line in `path`
    severity: Literal["error", "warning"] = "error"

    def where(self) -> str:
        if self.path is not None:
            return f"{self.path}:{self.line}" if self.line else str(self.path)
        return _SOURCE_LABEL[self.source]


_SOURCE_LABEL = {
    ConfigSource.DEFAULT: "the defaults",
    ConfigSource.ENV: "the OLLAMA_HOST environment variable",
    ConfigSource.USER_FILE: "your user config",
    ConfigSource.WORKSPACE_FILE: "the workspace config",
    ConfigSource.INIT_OPTIONS: "the editor's initializationOptions",
    ConfigSource.EDITOR: "the editor settings (aethel.*)",
}


@dataclass(frozen=True)
class ConfigLayer:
    """The raw values of one source, flattened to dotted camelCase keys."""

    source: ConfigSource
    values: Mapping[str, Any]
    path: Path | None = None
    lines: Mapping[str, int] = field(default_factory=dict)  # key -> 1-based line
    issues: tuple[ConfigIssue, ...] = ()  # problems found while reading (syntax, unknown keys)
    # providers / fallback / budget, raw; only a user config file may carry them
    machine: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedConfig:
    settings: Settings
    issues: tuple[ConfigIssue, ...]
    origins: Mapping[str, ConfigSource]  # key -> the source whose value won
    files: tuple[Path, ...] = ()  # config files that were read

    def origin(self, key: str) -> ConfigSource:
        return self.origins.get(key, ConfigSource.DEFAULT)


def flatten(
    raw: Mapping[str, Any],
    source: ConfigSource,
    *,
    path: Path | None = None,
    lines: Mapping[str, int] | None = None,
) -> ConfigLayer:
    """Nested tables / dotted keys -> a layer; unknown keys become warnings with a hint."""
    values: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    line_of = dict(lines or {})

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            key = f"{prefix}{name}"
            if not prefix and key in MACHINE_KEYS:
                if source is ConfigSource.USER_FILE:
                    machine[key] = value
                elif value is not None:
                    line = line_of.get(key) or next(
                        (n for k, n in line_of.items() if k.startswith(key + ".")), None)
                    issues.append(_machine_scoped(key, source, path, line))
            elif key in FIELDS_BY_KEY:
                values[key] = value
            elif key in TABLES and isinstance(value, Mapping):
                walk(value, key + ".")
            elif (
                not prefix
                and source is not ConfigSource.WORKSPACE_FILE
                and key in (_EDITOR_OWN_KEYS)
            ):
                continue
            elif value is None and source in (ConfigSource.EDITOR, ConfigSource.INIT_OPTIONS):
                continue  # editors send null for unset settings
            else:
                issues.append(_unknown_key(key, source, path, line_of.get(key)))

    walk(raw, "")
    # Editors send `null` for settings the user did not set: those mean "not set here".
    values = {k: v for k, v in values.items() if v is not None}
    return ConfigLayer(source, values, path, line_of, tuple(issues), machine)


def _machine_scoped(key: str, source: ConfigSource, path: Path | None,
                    line: int | None) -> ConfigIssue:
    where = str(path) if path else _SOURCE_LABEL[source]
    return ConfigIssue(
        f"`{key}` is ignored in {where}: providers, the fallback chain and the budget decide "
        "where your code is sent and what it costs, so only your user config "
        f"({USER_CONFIG_DISPLAY}) may set them.",
        source, key, path, line, "warning")


def _provider_config(layers: list[ConfigLayer]) -> tuple[ProviderConfig, list[ConfigIssue]]:
    """The machine-scoped settings of the (last) user config file that has any."""
    carrying = [layer for layer in layers if layer.machine]
    if not carrying:
        return ProviderConfig(), []
    layer = carrying[-1]
    config, problems = parse_provider_config(layer.machine)
    issues = [ConfigIssue(f"`{p.key}`: {p.message}.", layer.source,
                          p.key, layer.path, _line_near(layer.lines, p.key), p.severity)
              for p in problems]
    return config, issues


def _line_near(lines: Mapping[str, int], key: str) -> int | None:
    """The line of `key`, else of its closest enclosing table."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        line = lines.get(".".join(parts[:end]))
        if line is not None:
            return line
    return None


def _unknown_key(
    key: str, source: ConfigSource, path: Path | None, line: int | None
) -> ConfigIssue:
    close = difflib.get_close_matches(key, list(FIELDS_BY_KEY), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    where = str(path) if path else _SOURCE_LABEL[source]
    return ConfigIssue(
        f"Unknown setting `{key}` in {where}: it is ignored.{hint}",
        source,
        key,
        path,
        line,
        "warning",
    )


@dataclass
class _Candidate:
    value: Any
    layer: ConfigLayer


def resolve(layers: list[ConfigLayer]) -> ResolvedConfig:
    """Merge `layers` (lowest precedence first) into typed settings plus issues."""
    values = default_values()
    origins = {key: ConfigSource.DEFAULT for key in values}
    history: dict[str, list[_Candidate]] = {}
    issues: list[ConfigIssue] = []
    invalid: list[tuple[str, Any, InvalidValue, ConfigLayer]] = []

    for layer in layers:
        issues.extend(layer.issues)
        for key, raw in layer.values.items():
            if layer.source.is_workspace and is_user_only(key):
                issues.append(_user_only_issue(key, layer))
                continue
            try:
                parsed = FIELDS_BY_KEY[key].parse(raw)
            except InvalidValue as exc:
                invalid.append((key, raw, exc, layer))
                continue
            values[key] = parsed
            origins[key] = layer.source
            history.setdefault(key, []).append(_Candidate(parsed, layer))

    providers, provider_issues = _provider_config(layers)
    allow_remote = bool(values["allowRemoteHostFromWorkspace"])
    for key in HOST_KEYS:
        issue = _enforce_workspace_host(key, values, origins, history, allow_remote,
                                        IS_LOCAL[key])
        if issue is not None:
            issues.append(issue)
    for key in MODEL_KEYS:  # `provider/model` names where the code goes, like a host
        issue = _enforce_workspace_host(key, values, origins, history, allow_remote,
                                        lambda model: _stays_local(model, providers))
        if issue is not None:
            issues.append(issue)

    for key, raw, error, layer in invalid:
        issues.append(
            ConfigIssue(
                f"Invalid setting `{key}` = {raw!r} in {_layer_label(layer)}: {error}. "
                f"Using {values[key]!r} instead.",
                layer.source,
                key,
                layer.path,
                layer.lines.get(key),
            )
        )

    issues.extend(provider_issues)
    files = tuple(layer.path for layer in layers if layer.path is not None)
    settings = dataclasses.replace(build_settings(values), providers=providers)
    return ResolvedConfig(settings, tuple(issues), origins, files)


def _user_only_issue(key: str, layer: ConfigLayer) -> ConfigIssue:
    """A workspace file tried to set a machine-scoped key: say so, and where it belongs."""
    table, _, name = key.rpartition(".")
    how = f"`{name} = ...` under `[{table}]`" if table else f"`{key} = ...`"
    return ConfigIssue(
        f"`{key}` in {_at(layer, key)} is ignored: a repository may not "
        "choose which secret is sent, which file is loaded or where your code goes. If you "
        f"want it, set {how} in your user config ({USER_CONFIG_DISPLAY}) or in your "
        "editor settings.",
        layer.source,
        key,
        layer.path,
        layer.lines.get(key),
        "warning",
    )


def _at(layer: ConfigLayer, key: str) -> str:
    """`/ws/aethel.toml (line 3)`: the file and line a workspace value was written on."""
    where = str(layer.path) if layer.path else "the workspace config"
    line = layer.lines.get(key)
    return f"{where} (line {line})" if line else where


MODEL_KEYS = ("model", "completion.model")


def _stays_local(model: str, providers: ProviderConfig) -> bool:
    """A bare model name runs on the local engine; `provider/model` where that provider
    answers on this machine only."""
    name, _ = split_model(model, providers)
    provider = providers.get(name) if name else None
    return provider is None or all(_host_is_local(provider.kind, host)
                                   for host in provider.hosts)


def _host_is_local(kind: str, host: str) -> bool:
    """The same "this machine" rule as the `host` / `openai.baseUrl` settings."""
    return IS_LOCAL["host" if kind == "ollama" else "openai.baseUrl"](host)


def _layer_label(layer: ConfigLayer) -> str:
    return str(layer.path) if layer.path else _SOURCE_LABEL[layer.source]


def _enforce_workspace_host(
    key: str,
    values: dict[str, Any],
    origins: dict[str, ConfigSource],
    history: dict[str, list[_Candidate]],
    allow_remote: bool,
    stays_local: Callable[[str], bool],
) -> ConfigIssue | None:
    """Refuse a non-loopback host (or a model of a hosted provider) set by a workspace file,
    unless the user allowed it.

    A repository's `aethel.toml` must not be able to send the user's code elsewhere.
    The refused value is replaced by the best value from the user's own sources.
    """
    value = values[key]
    if not origins[key].is_workspace or not value or allow_remote or stays_local(value):
        return None
    candidates = history.get(key, [])
    winner = candidates[-1]
    fallback = [c for c in candidates if not c.layer.source.is_workspace]
    if fallback:
        values[key] = fallback[-1].value
        origins[key] = fallback[-1].layer.source
    else:
        values[key] = FIELDS_BY_KEY[key].default
        origins[key] = ConfigSource.DEFAULT
    return ConfigIssue(
        f"Refused `{key}` = {value!r} from {_at(winner.layer, key)}: "
        "a workspace file may not send your code to a host that is not on this machine. "
        f"Using {values[key]!r}. If you trust this repository, set "
        f"`allowRemoteHostFromWorkspace = true` in your user config ({USER_CONFIG_DISPLAY}) "
        "or your editor settings.",
        ConfigSource.WORKSPACE_FILE,
        key,
        winner.layer.path,
        winner.layer.lines.get(key),
    )
