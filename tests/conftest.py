"""Shared pytest fixtures: the fake Ollama and an environment that touches no real user files.

Import helpers from here in other test modules (`from tests.conftest import isolated_environ`)
or just request the fixtures by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.ollama import FakeOllama

# Variables that would let a test read or write the developer's real config or state, or
# talk to a real Ollama, if inherited.
_SCRUBBED = ("OLLAMA_HOST", "OLLAMA_API_KEY", "AETHEL_LSP_CONFIG", "AETHEL_LSP_ENGINE")


def isolated_environ(base: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `os.environ` whose HOME, XDG dirs and state dir live under `base`.

    Use it as `env=` for subprocesses; `extra` is applied last (e.g. `OLLAMA_HOST`).
    """
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    dirs = {
        "HOME": base / "home",
        "XDG_CONFIG_HOME": base / "config",
        "XDG_STATE_HOME": base / "state",
        "XDG_CACHE_HOME": base / "cache",
        "XDG_DATA_HOME": base / "data",
        "AETHEL_LSP_STATE_DIR": base / "state" / "aethel-lsp",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env.update(extra or {})
    return env


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point HOME, XDG_* and AETHEL_LSP_STATE_DIR of this process at tmp dirs.

    Returns the full environment, ready to pass to a subprocess.
    """
    env = isolated_environ(tmp_path / "env")
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    for name in (
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "AETHEL_LSP_STATE_DIR",
    ):
        monkeypatch.setenv(name, env[name])
    return env


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A fresh fake Ollama on an ephemeral port (default models, no token delay)."""
    with FakeOllama() as fake:
        yield fake
