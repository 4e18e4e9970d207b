"""Where state and config live (XDG), and the override tests rely on."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import aethel_lsp.paths as paths_module
from aethel_lsp.paths import state_dir, user_config_path


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AETHEL_LSP_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert state_dir() == tmp_path / ".local" / "state" / "aethel-lsp"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "aethel-lsp"
    monkeypatch.setenv("AETHEL_LSP_STATE_DIR", str(tmp_path / "explicit"))
    assert state_dir() == tmp_path / "explicit"


def test_user_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert user_config_path() == tmp_path / ".config" / "aethel-lsp" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert user_config_path() == tmp_path / "cfg" / "aethel-lsp" / "config.toml"


def test_doctests() -> None:
    assert doctest.testmod(paths_module).failed == 0
