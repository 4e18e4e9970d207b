"""The fast cursor offset used by the completion features agrees with pygls'."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from aethel_lsp.lsp.open_documents import offset_at
from aethel_lsp.prompts.context import line_span

TEXT = 'x = "😋"\nsecond line\r\n\nlast = 1'


def test_line_span() -> None:
    assert line_span("a\nbc\n", 0) == (0, "a\n")
    assert line_span("a\nbc\n", 1) == (2, "bc\n")
    assert line_span("a\nbc", 1) == (2, "bc")
    assert line_span("a\nbc\n", 2) == (5, "")
    assert line_span("a\nbc\n", 7) == (5, "")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize(
    ("line", "character"), [(0, 0), (0, 5), (0, 7), (1, 3), (1, 11), (2, 0), (3, 4), (3, 8)]
)
def test_offset_matches_pygls(encoding: str, line: int, character: int) -> None:
    codec = PositionCodec(types.PositionEncodingKind(encoding))
    document = TextDocument("file:///t.py", TEXT, position_codec=codec)
    position = types.Position(line=line, character=character)
    expected = document.offset_at_position(types.Position(line=line, character=character))
    assert offset_at(document, position) == expected
