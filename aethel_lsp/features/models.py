"""Placeholder: filled in next."""

from __future__ import annotations

from aethel_lsp.session import AethelServer


def register(server: AethelServer) -> None:
    """Attach this feature's handlers to `server`."""
