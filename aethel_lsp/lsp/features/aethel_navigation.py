"""Definition, references, highlights and rename for Aethel identifiers.

Scope is one intent (Aethel has no other): a parameter defines its name, otherwise
the first use in the intent does (usually the guard line that pins it).  Answers are
computed on a worker thread from the shared parse (see `aethel_documents`).
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.language.symbols import RenameError, definition, name_at, references, rename
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer


def definition_of(snap: Snapshot, position: types.Position) -> types.Location | None:
    span = definition(snap.parsed().program, snap.offset_at(position))
    if span is None:
        return None
    return types.Location(uri=snap.uri, range=snap.range(span))


def references_of(
    snap: Snapshot, position: types.Position, include_declaration: bool
) -> list[types.Location]:
    spans = references(
        snap.parsed().program, snap.offset_at(position), include_declaration=include_declaration
    )
    return [types.Location(uri=snap.uri, range=snap.range(s)) for s in spans]


def highlights_of(snap: Snapshot, position: types.Position) -> list[types.DocumentHighlight]:
    spans = references(snap.parsed().program, snap.offset_at(position))
    return [types.DocumentHighlight(range=snap.range(s)) for s in spans]


def rename_range(snap: Snapshot, position: types.Position) -> types.Range | None:
    found = name_at(snap.parsed().program, snap.offset_at(position))
    if found is None:
        return None
    return snap.range(found[1].span)


def rename_edit(snap: Snapshot, position: types.Position, new_name: str) -> types.WorkspaceEdit:
    """Raises RenameError (the message is for the user)."""
    edits = rename(snap.parsed().program, snap.offset_at(position), new_name)
    return types.WorkspaceEdit(
        changes={
            snap.uri: [
                types.TextEdit(range=snap.range(span), new_text=text) for span, text in edits
            ]
        }
    )


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    async def goto_definition(
        ls: AethelServer, params: types.DefinitionParams
    ) -> types.Location | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: definition_of(snap, params.position))

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    async def find_references(
        ls: AethelServer, params: types.ReferenceParams
    ) -> list[types.Location] | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        include = params.context.include_declaration
        return await run_in_daemon_thread(lambda: references_of(snap, params.position, include))

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    async def highlight(
        ls: AethelServer, params: types.DocumentHighlightParams
    ) -> list[types.DocumentHighlight] | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: highlights_of(snap, params.position))

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    async def prepare_rename(
        ls: AethelServer, params: types.PrepareRenameParams
    ) -> types.Range | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: rename_range(snap, params.position))

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    async def on_rename(ls: AethelServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        try:
            return await run_in_daemon_thread(
                lambda: rename_edit(snap, params.position, params.new_name)
            )
        except RenameError as exc:
            ls.show(f"aethel-lsp: cannot rename: {exc}", types.MessageType.Warning)
            return None
