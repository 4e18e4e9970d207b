"""textDocument/foldingRange for Aethel: batches, intents, blocks, comment runs."""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.aethel_documents import aethel_document, parsed
from aethel_lsp.language.symbols import folding_ranges
from aethel_lsp.session import AethelServer


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    def folding(ls: AethelServer, params: types.FoldingRangeParams) -> list[types.FoldingRange]:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return []
        return [
            types.FoldingRange(
                start_line=r.start_line,
                end_line=r.end_line,
                kind=(
                    types.FoldingRangeKind.Comment
                    if r.kind == "comment"
                    else types.FoldingRangeKind.Region
                ),
            )
            for r in folding_ranges(parsed(document).program)
        ]
