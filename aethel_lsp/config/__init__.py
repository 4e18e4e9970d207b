"""Settings of aethel-lsp: raw sources -> typed, defaulted `Settings` + `ConfigIssue`s.

No LSP and no HTTP here: the server hands in editor payloads and workspace roots,
and gets back a `ResolvedConfig`.  docs/configuration.md is the contract.
"""

from __future__ import annotations

from aethel_lsp.config.loader import (
    config_files,
    dict_layer,
    env_layer,
    load_config,
    toml_file_layer,
    toml_key_lines,
    user_config_file,
    workspace_layer,
)
from aethel_lsp.config.provider_settings import (
    BudgetSettings,
    Price,
    ProviderConfig,
    ProviderSettings,
)
from aethel_lsp.config.resolve import (
    ConfigIssue,
    ConfigLayer,
    ConfigSource,
    ResolvedConfig,
    flatten,
    resolve,
)
from aethel_lsp.config.schema import (
    ACTION_NAMES,
    DEFAULT_HOST,
    FIELDS,
    FIELDS_BY_KEY,
    ActionSettings,
    CompletionSettings,
    EmbeddedSettings,
    GenerationSettings,
    InspectorSettings,
    InvalidValue,
    OpenAISettings,
    Settings,
    TimeoutSettings,
)
from aethel_lsp.hosts import host_name, is_loopback_host

__all__ = [
    "ACTION_NAMES",
    "DEFAULT_HOST",
    "FIELDS",
    "FIELDS_BY_KEY",
    "ActionSettings",
    "BudgetSettings",
    "CompletionSettings",
    "ConfigIssue",
    "ConfigLayer",
    "ConfigSource",
    "EmbeddedSettings",
    "GenerationSettings",
    "InspectorSettings",
    "InvalidValue",
    "OpenAISettings",
    "Price",
    "ProviderConfig",
    "ProviderSettings",
    "ResolvedConfig",
    "Settings",
    "TimeoutSettings",
    "config_files",
    "dict_layer",
    "env_layer",
    "flatten",
    "host_name",
    "is_loopback_host",
    "load_config",
    "resolve",
    "toml_file_layer",
    "toml_key_lines",
    "user_config_file",
    "workspace_layer",
]
