"""Where aethel-lsp keeps per-user files (state, config), following the XDG base directories.

Pure functions of the environment, so tests can point everything at a temporary
directory with one variable (`AETHEL_LSP_STATE_DIR`) and never touch the real home.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "aethel-lsp"
STATE_DIR_ENV = "AETHEL_LSP_STATE_DIR"
USER_CONFIG_DISPLAY = "~/.config/aethel-lsp/config.toml"  # how messages name the user config


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The directory for data that should survive restarts (usage statistics, probes).

    `$AETHEL_LSP_STATE_DIR` wins (tests and sandboxes set it), then
    `$XDG_STATE_HOME/aethel-lsp`, then `~/.local/state/aethel-lsp`. Not created here:
    callers create it when they first write.

    >>> str(state_dir({"AETHEL_LSP_STATE_DIR": "/tmp/s"}))
    '/tmp/s'
    >>> str(state_dir({"XDG_STATE_HOME": "/x/state"}))
    '/x/state/aethel-lsp'
    """
    environ = os.environ if env is None else env
    explicit = environ.get(STATE_DIR_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg:
        return Path(xdg).expanduser() / APP_NAME
    return Path.home() / ".local" / "state" / APP_NAME


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's own config file: `$XDG_CONFIG_HOME/aethel-lsp/config.toml` or `~/.config/...`.

    >>> str(user_config_path({"XDG_CONFIG_HOME": "/x/cfg"}))
    '/x/cfg/aethel-lsp/config.toml'
    """
    environ = os.environ if env is None else env
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / APP_NAME / "config.toml"


MODELS_DIR_ENV = "AETHEL_LSP_MODELS_DIR"


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `aethel-lsp pull` keeps the embedded engine's GGUF files.

    `$AETHEL_LSP_MODELS_DIR` wins, then `$XDG_DATA_HOME/aethel-lsp/models`, then
    `~/.local/share/aethel-lsp/models`. Data, not state: a model survives a state reset.

    >>> str(models_dir({"AETHEL_LSP_MODELS_DIR": "/m"}))
    '/m'
    >>> str(models_dir({"XDG_DATA_HOME": "/x/data"}))
    '/x/data/aethel-lsp/models'
    """
    environ = os.environ if env is None else env
    explicit = environ.get(MODELS_DIR_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_DATA_HOME", "")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / APP_NAME / "models"
