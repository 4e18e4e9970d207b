"""textDocument/hover for Aethel: keyword and operator docs, parameters, state variables."""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.aethel_documents import aethel_document, lsp_range, offset_at, parsed
from aethel_lsp.language.symbols import hover
from aethel_lsp.session import AethelServer


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: AethelServer, params: types.HoverParams) -> types.Hover | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        offset = offset_at(document, params.position)
        found = hover(document.source, parsed(document).program, offset)
        if found is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
            range=lsp_range(document, document.lines, found.span),
        )
