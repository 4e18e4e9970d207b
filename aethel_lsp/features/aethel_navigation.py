"""Definition, references, highlights and rename for Aethel identifiers.

Scope is one intent (Aethel has no other): a parameter defines its name, otherwise
the first use in the intent does (usually the guard line that pins it).
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.aethel_documents import aethel_document, lsp_range, offset_at, parsed
from aethel_lsp.language.symbols import RenameError, definition, name_at, references, rename
from aethel_lsp.session import AethelServer


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def goto_definition(ls: AethelServer, params: types.DefinitionParams) -> types.Location | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        span = definition(parsed(document).program, offset_at(document, params.position))
        if span is None:
            return None
        return types.Location(uri=document.uri, range=lsp_range(document, document.lines, span))

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def find_references(
        ls: AethelServer, params: types.ReferenceParams
    ) -> list[types.Location] | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        spans = references(
            parsed(document).program,
            offset_at(document, params.position),
            include_declaration=params.context.include_declaration,
        )
        lines = document.lines
        return [
            types.Location(uri=document.uri, range=lsp_range(document, lines, s)) for s in spans
        ]

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    def highlight(
        ls: AethelServer, params: types.DocumentHighlightParams
    ) -> list[types.DocumentHighlight] | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        spans = references(parsed(document).program, offset_at(document, params.position))
        lines = document.lines
        return [types.DocumentHighlight(range=lsp_range(document, lines, s)) for s in spans]

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(ls: AethelServer, params: types.PrepareRenameParams) -> types.Range | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        found = name_at(parsed(document).program, offset_at(document, params.position))
        if found is None:
            return None
        return lsp_range(document, document.lines, found[1].span)

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    def on_rename(ls: AethelServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        try:
            edits = rename(
                parsed(document).program, offset_at(document, params.position), params.new_name
            )
        except RenameError as exc:
            ls.show(f"aethel-lsp: cannot rename: {exc}", types.MessageType.Warning)
            return None
        lines = document.lines
        return types.WorkspaceEdit(
            changes={
                document.uri: [
                    types.TextEdit(range=lsp_range(document, lines, span), new_text=text)
                    for span, text in edits
                ]
            }
        )
