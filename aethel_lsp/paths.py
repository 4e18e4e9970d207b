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
    return (_override(environ, STATE_DIR_ENV)
            or _xdg_base(environ, "XDG_STATE_HOME", ".local", "state") / APP_NAME)


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's own config file: `$XDG_CONFIG_HOME/aethel-lsp/config.toml` or `~/.config/...`.

    >>> str(user_config_path({"XDG_CONFIG_HOME": "/x/cfg"}))
    '/x/cfg/aethel-lsp/config.toml'
    """
    environ = os.environ if env is None else env
    return _xdg_base(environ, "XDG_CONFIG_HOME", ".config") / APP_NAME / "config.toml"


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
    return (_override(environ, MODELS_DIR_ENV)
            or _xdg_base(environ, "XDG_DATA_HOME", ".local", "share") / APP_NAME / "models")


def _override(environ: Mapping[str, str], variable: str) -> Path | None:
    """The directory an aethel-lsp variable names, when set (it wins over XDG)."""
    explicit = environ.get(variable, "")
    return Path(explicit).expanduser() if explicit else None


def _xdg_base(environ: Mapping[str, str], variable: str, *default: str) -> Path:
    """An XDG base directory: `$variable` when set, else its default below the home."""
    xdg = environ.get(variable, "")
    return Path(xdg).expanduser() if xdg else Path.home().joinpath(*default)


# State files hold prompts (the user's code), usage and reports: only the user may read them.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed; `path` itself ends up 0700 whoever made it."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    _chmod(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists as a 0600 file (created so, or narrowed if it was wider).

    Call before handing the path to SQLite: its journal and WAL files copy these modes.
    """
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    _chmod(path, PRIVATE_FILE_MODE)
    return path


def private_sqlite(path: Path) -> Path:
    """`private_file` for a SQLite database, and its WAL files left by older versions."""
    private_file(path)
    for extra in ("-wal", "-shm", "-journal"):
        sibling = path.with_name(path.name + extra)
        if sibling.exists():
            _chmod(sibling, PRIVATE_FILE_MODE)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to a 0600 file (the folder 0700)."""
    private_file(path)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _chmod(path: Path, mode: int) -> None:
    try:
        if (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
    except OSError:  # not ours (a shared dir): leave it, the files inside are still 0600
        pass
