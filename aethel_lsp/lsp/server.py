"""`create_server()`: a fresh aethel-lsp server with every feature registered.

This module only wires features together.  Each feature module exposes
`register(server)`; to add one, import it and append it to `FEATURES` (one line).
Nothing is created at import time, so tests and the CLI get independent servers.
"""

from __future__ import annotations

from types import ModuleType

from aethel_lsp.lsp.features import (
    aethel_diagnostics,
    aethel_folding,
    aethel_formatting,
    aethel_hover,
    aethel_navigation,
    aethel_semantic_tokens,
    aethel_symbols,
    code_actions,
    commands,
    completion,
    doctor,
    inline_completion,
    lifecycle,
    models,
)
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.lsp.stderr_log import install as install_stderr_log
from aethel_lsp.lsp.tcp import serve_tcp

__all__ = ["FEATURES", "create_server", "install_stderr_log", "serve_tcp"]

# Order matters only for readability; features never depend on each other.
FEATURES: tuple[ModuleType, ...] = (
    lifecycle,  # initialize, settings sources, reload on change, aethel/status
    models,  # aethel.modelStatus / throughput / listModels / selectModel / pullModel
    commands,  # aethel.explainSelection / generateContract / improve / document / fixWithAI
    code_actions,  # textDocument/codeAction (instant, never calls the model)
    inline_completion,  # textDocument/inlineCompletion (FIM ghost text, latency discipline)
    completion,  # textDocument/completion + completionItem/resolve (local items + AI item)
    doctor,  # aethel.doctor / inspectLast / recommendModels; the request inspector
    aethel_diagnostics,  # .ae: didOpen/didChange/didClose -> syntax now, z3 checker after
    aethel_symbols,  # .ae: textDocument/documentSymbol
    aethel_hover,  # .ae: textDocument/hover
    aethel_folding,  # .ae: textDocument/foldingRange
    aethel_formatting,  # .ae: textDocument/formatting
    aethel_navigation,  # .ae: definition / references / documentHighlight / rename
    aethel_semantic_tokens,  # .ae: textDocument/semanticTokens/full
)


def create_server() -> AethelServer:
    """A new, unstarted server (`server.start_io()`, or `serve_tcp(server, ...)` to run it)."""
    server = AethelServer()
    for feature in FEATURES:
        feature.register(server)
    return server
