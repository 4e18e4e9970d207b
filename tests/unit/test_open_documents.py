"""`document_key` must be pygls' own key: fails if a pygls release changes how its
workspace files documents (then every lookup of a percent-encoded URI would miss)."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from aethel_lsp.lsp.open_documents import document_key, open_document, same_document

SPELLINGS = [
    "file:///tmp/My%20Project%20%281%29/a.py",
    "file:///tmp/My%20Project%20(1)/a.py",
    "file:///c%3A/Users/r%C3%A9my/a.ae",
    "file:///C:/plain/a.ae",
    "untitled:Untitled-1",
]


@pytest.mark.parametrize("uri", SPELLINGS)
def test_open_document_finds_what_pygls_stored(uri: str) -> None:
    workspace = Workspace(None)
    item = types.TextDocumentItem(uri=uri, language_id="python", version=3, text="x = 1\n")
    workspace.put_text_document(item)
    assert document_key(uri) in workspace.text_documents  # pygls' own key
    found = open_document(workspace, uri)
    assert found is not None and found.uri == uri and found.version == 3
    workspace.remove_text_document(uri)
    assert open_document(workspace, uri) is None


def test_spellings_of_one_document_are_the_same_document() -> None:
    assert same_document(SPELLINGS[0], SPELLINGS[1])
    assert same_document("file:///c%3A/a.py", "file:///c:/a.py")
    assert not same_document("file:///a.py", "file:///b.py")
