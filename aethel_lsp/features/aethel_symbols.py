"""textDocument/documentSymbol for Aethel: batches > intents > parameters and blocks.

Built from the error-tolerant tree, so the outline keeps working while typing.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.aethel_documents import aethel_document, lsp_range, parsed
from aethel_lsp.language.symbols import Symbol, SymbolKind, document_symbols
from aethel_lsp.session import AethelServer

_KINDS = {
    SymbolKind.BATCH: types.SymbolKind.Namespace,
    SymbolKind.INTENT: types.SymbolKind.Function,
    SymbolKind.PARAM: types.SymbolKind.Variable,
    SymbolKind.BLOCK: types.SymbolKind.Object,
    SymbolKind.SETTING: types.SymbolKind.Property,
}


def _convert(document: TextDocument, lines: Sequence[str], symbol: Symbol) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=symbol.name,
        kind=_KINDS[symbol.kind],
        range=lsp_range(document, lines, symbol.span),
        selection_range=lsp_range(document, lines, symbol.selection),
        detail=symbol.detail or None,
        children=[_convert(document, lines, child) for child in symbol.children],
    )


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(
        ls: AethelServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol] | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        lines = document.lines
        program = parsed(document).program
        return [_convert(document, lines, s) for s in document_symbols(program)]
