"""textDocument/formatting for Aethel: the canonical formatter, as one whole-document edit.

A document with syntax errors is left alone (no edits) and the user is told why:
reprinting the parser's recovery guesses would rewrite what they typed.
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.aethel_documents import aethel_document, parsed
from aethel_lsp.language.formatter import format_text
from aethel_lsp.session import AethelServer


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(
        ls: AethelServer, params: types.DocumentFormattingParams
    ) -> list[types.TextEdit] | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        source = document.source
        if not parsed(document).ok:
            ls.show(
                "aethel-lsp: not formatting: the file has syntax errors. Fix the errors "
                "marked in the editor, then format again.",
                types.MessageType.Warning,
            )
            return []
        formatted = format_text(source)
        if formatted is None or formatted == source:
            return []
        lines = document.lines
        end = document.position_codec.position_to_client_units(
            lines, types.Position(line=len(lines), character=0)
        )
        return [
            types.TextEdit(
                range=types.Range(start=types.Position(line=0, character=0), end=end),
                new_text=formatted,
            )
        ]
