"""The one way to find an open document by URI: under pygls' own key.

pygls' workspace stores open documents under `urllib.parse.unquote(uri)`, so the
document VS Code opened as `file:///c%3A/My%20Project%20(1)/a.py` is kept under
`file:///c:/My Project (1)/a.py`.  Looking it up with the URI as a request carries it
misses (no completion, no diagnostics, "Unknown document"), so every lookup and every
per-document map of ours goes through `document_key`.  What we send back to the client
is always the document's own `uri`, exactly as the client spelled it.

`tests/unit/test_open_documents.py` fails if a pygls release changes its key.
"""

from __future__ import annotations

from urllib.parse import unquote

from pygls.workspace import TextDocument, Workspace


def document_key(uri: str) -> str:
    """The key pygls files `uri` under (equal for every spelling of one document).

    >>> document_key("file:///c%3A/My%20Project%20(1)/a.py")
    'file:///c:/My Project (1)/a.py'
    """
    return unquote(uri)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The document the editor has open at `uri` (any spelling), else None."""
    document: TextDocument | None = workspace.text_documents.get(document_key(uri))
    return document


def same_document(a: str, b: str) -> bool:
    """Whether two URIs name the same document."""
    return a == b or document_key(a) == document_key(b)
