"""edit_target: the text an edit replaces is the client's range, clamped like a selection."""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.lsp.actions import edit_target


def _range(start: tuple[int, int], end: tuple[int, int]) -> types.Range:
    return types.Range(start=types.Position(*start), end=types.Position(*end))


def test_a_column_past_the_end_of_the_last_line_takes_the_whole_line() -> None:
    """LSP: a column past the line's length is the line's end (here a last line without
    a newline, where pygls' own conversion drops the last character)."""
    document = TextDocument("file:///a.py", "x = 0\na = 1")
    rng = _range((1, 0), (1, 2147483647))
    target = edit_target(document, document.uri, rng)
    assert target.text == "a = 1"
    assert rng.end.character == 2147483647  # the client's range is not rewritten


def test_columns_are_client_units_and_lines_past_the_end_are_the_end() -> None:
    document = TextDocument("file:///a.py", 'x = "😋"\r\nb = 2\n')
    assert edit_target(document, document.uri, _range((0, 5), (0, 7))).text == "😋"
    assert edit_target(document, document.uri, _range((0, 5), (0, 99))).text == '😋"'
    assert edit_target(document, document.uri, _range((1, 0), (9, 0))).text == "b = 2\n"
