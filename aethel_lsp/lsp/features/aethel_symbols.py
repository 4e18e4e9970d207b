"""textDocument/documentSymbol for Aethel: batches > intents > parameters and blocks.

Built from the error-tolerant tree, so the outline keeps working while typing; on a
worker thread from the shared parse (see `aethel_documents`).
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.language.symbols import Symbol, SymbolKind, document_symbols
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer

_KINDS = {
    SymbolKind.BATCH: types.SymbolKind.Namespace,
    SymbolKind.INTENT: types.SymbolKind.Function,
    SymbolKind.PARAM: types.SymbolKind.Variable,
    SymbolKind.BLOCK: types.SymbolKind.Object,
    SymbolKind.SETTING: types.SymbolKind.Property,
}


def _convert(snap: Snapshot, symbol: Symbol) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=symbol.name,
        kind=_KINDS[symbol.kind],
        range=snap.range(symbol.span),
        selection_range=snap.range(symbol.selection),
        detail=symbol.detail or None,
        children=[_convert(snap, child) for child in symbol.children],
    )


def outline(snap: Snapshot) -> list[types.DocumentSymbol]:
    return [_convert(snap, s) for s in document_symbols(snap.parsed().program)]


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def document_symbol(
        ls: AethelServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol] | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: outline(snap))
