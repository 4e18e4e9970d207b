"""The effective value of each setting and where it came from (default, environment,
editor, user or workspace file down to the line), for the doctor's config section."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aethel_lsp.config import (
    FIELDS,
    ConfigSource,
    ResolvedConfig,
    Settings,
    toml_key_lines,
)
from aethel_lsp.engine.types import JsonDict
from aethel_lsp.paths import user_config_path


def setting_value(settings: Settings, key: str) -> Any:
    """The effective value of a dotted camelCase key (`completion.maxTokens`)."""
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, re.sub(r"(?<!^)([A-Z])", r"_\1", part).lower())
    return list(value) if isinstance(value, tuple) else value


def effective_settings(config: ResolvedConfig) -> JsonDict:
    return {f.key: {"value": setting_value(config.settings, f.key),
                    "source": config.origin(f.key).value} for f in FIELDS}


def describe_origin(config: ResolvedConfig, key: str, env: Mapping[str, str]) -> str:
    """Where a setting's value came from, down to the file and line when there is one."""
    source = config.origin(key)
    if source is ConfigSource.DEFAULT:
        return "the default"
    if source is ConfigSource.ENV:
        return f"the OLLAMA_HOST environment variable (OLLAMA_HOST={env.get('OLLAMA_HOST', '')})"
    if source is ConfigSource.INIT_OPTIONS:
        return "the editor's initializationOptions"
    if source is ConfigSource.EDITOR:
        return f"the editor settings (aethel.{key})"
    user_file = user_config_path(env)
    for path in config.files:
        is_user = path == user_file
        if is_user != (source is ConfigSource.USER_FILE):
            continue
        line = _line_of(path, key)
        where = f"{path}:{line}" if line else str(path)
        return f"your user config ({where})" if is_user else f"the workspace config ({where})"
    return "your user config" if source is ConfigSource.USER_FILE else "the workspace config"


def _line_of(path: Path, key: str) -> int | None:
    table = ("tool", "aethel-lsp") if path.name == "pyproject.toml" else ()
    try:
        return toml_key_lines(path.read_text(encoding="utf-8"), table).get(key)
    except (OSError, UnicodeDecodeError):
        return None
