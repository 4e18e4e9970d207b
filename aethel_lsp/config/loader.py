"""Read the configuration sources from disk and the environment into layers.

The only I/O of the config package.  TOML is parsed with tomllib (tomli before
Python 3.11); because tomllib does not report positions, `toml_key_lines` finds the
line of each key so that an invalid value can be underlined where it was written.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aethel_lsp.config.resolve import (
    ConfigIssue,
    ConfigLayer,
    ConfigSource,
    ResolvedConfig,
    flatten,
    resolve,
)
from aethel_lsp.hosts import strip_env_quotes
from aethel_lsp.paths import user_config_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

WORKSPACE_FILE = "aethel.toml"
PYPROJECT_FILE = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "aethel-lsp")


def user_config_file(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/aethel-lsp/config.toml`, else `~/.config/aethel-lsp/config.toml`."""
    return user_config_path(env)


def env_layer(env: Mapping[str, str] | None = None) -> ConfigLayer | None:
    env = os.environ if env is None else env
    host = strip_env_quotes(env.get("OLLAMA_HOST", ""))  # Go's envconfig allows quotes
    return ConfigLayer(ConfigSource.ENV, {"host": host}) if host else None


def dict_layer(source: ConfigSource, raw: Any) -> ConfigLayer | None:
    """initializationOptions / workspace/configuration payloads (may be null or junk)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        issue = ConfigIssue(
            f"Ignored the settings from the {source.value}: expected an object, got {raw!r}.",
            source,
            severity="warning",
        )
        return ConfigLayer(source, {}, issues=(issue,))
    return flatten(raw, source)


def toml_file_layer(
    path: Path, source: ConfigSource, table: tuple[str, ...] = ()
) -> ConfigLayer | None:
    """One TOML file (or one table of it); None when the file or table does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        issue = ConfigIssue(f"Could not read {path}: {exc}. It is ignored.", source, path=path)
        return ConfigLayer(source, {}, path, issues=(issue,))
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        issue = ConfigIssue(
            f"{path} is not valid TOML ({exc}); the whole file is ignored until it is fixed.",
            source,
            path=path,
            line=int(match.group(1)) if match else 1,
        )
        return ConfigLayer(source, {}, path, issues=(issue,))
    for name in table:
        data = data.get(name) if isinstance(data, dict) else None
        if data is None:
            return None
    if not isinstance(data, dict):
        issue = ConfigIssue(f"[{'.'.join(table)}] in {path} must be a table.", source, path=path)
        return ConfigLayer(source, {}, path, issues=(issue,))
    return flatten(data, source, path=path, lines=toml_key_lines(text, table))


def workspace_layer(root: Path) -> ConfigLayer | None:
    """`aethel.toml` at the root, else `[tool.aethel-lsp]` of `pyproject.toml`."""
    layer = toml_file_layer(root / WORKSPACE_FILE, ConfigSource.WORKSPACE_FILE)
    if layer is not None:
        return layer
    return toml_file_layer(root / PYPROJECT_FILE, ConfigSource.WORKSPACE_FILE, PYPROJECT_TABLE)


def config_files(roots: list[Path], env: Mapping[str, str] | None = None) -> list[Path]:
    """Every file whose change must trigger a reload (existing or not)."""
    files = [user_config_file(env)]
    for root in roots:
        files += [root / WORKSPACE_FILE, root / PYPROJECT_FILE]
    return files


def load_config(
    *,
    roots: list[Path],
    init_options: Any = None,
    editor: Any = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Read every source and resolve them, lowest precedence first."""
    candidates: list[ConfigLayer | None] = [
        env_layer(env),
        toml_file_layer(user_config_file(env), ConfigSource.USER_FILE),
    ]
    for root in roots:  # the first workspace folder with a config wins
        layer = workspace_layer(root)
        if layer is not None:
            candidates.append(layer)
            break
    candidates += [
        dict_layer(ConfigSource.INIT_OPTIONS, init_options),
        dict_layer(ConfigSource.EDITOR, editor),
    ]
    return resolve([layer for layer in candidates if layer is not None])


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return tuple(a or b or c for a, b, c in parts)


def toml_key_lines(text: str, table: tuple[str, ...] = ()) -> dict[str, int]:
    """Map dotted keys (relative to `table`) to the 1-based line that sets them.

    >>> toml_key_lines('model = "a"\\n[completion]\\nmaxTokens = 9\\n')
    {'model': 1, 'completion': 2, 'completion.maxTokens': 3}
    """
    lines: dict[str, int] = {}
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("[["):
            current = _split_key(header.group(1))
            full = current
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = current + _split_key(key.group(1))
        if full[: len(table)] != table or len(full) == len(table):
            continue
        lines.setdefault(".".join(full[len(table) :]), number)
    return lines
