"""Stop sequences on a token stream: never emit a stop sequence, even split over tokens,
and never hold back text that turns out not to be one."""

from __future__ import annotations

from aethel_lsp.engine.embedded import _StopScanner


def feed_all(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    scanner = _StopScanner(stops)
    out = []
    for piece in pieces:
        text, hit = scanner.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


def test_without_stops_text_passes_through_at_once() -> None:
    scanner = _StopScanner(())
    assert scanner.feed("abc") == ("abc", False)
    assert scanner.feed("") == ("", False)
    assert scanner.flush() == ""


def test_stop_split_over_tokens_is_not_emitted() -> None:
    assert feed_all(("```",), ["code:", " `", "`", "` more"]) == ("code: ", True)


def test_possible_prefix_is_held_then_released() -> None:
    scanner = _StopScanner(("END",))
    assert scanner.feed("the E") == ("the ", False)  # "E" might start "END"
    assert scanner.feed("ND") == ("", True)
    scanner = _StopScanner(("END",))
    assert scanner.feed("the EN") == ("the ", False)
    assert scanner.feed("TRY") == ("ENTRY", False)  # it was not a stop after all


def test_held_text_is_released_when_the_stream_ends() -> None:
    assert feed_all(("STOP",), ["one ST"]) == ("one ST", False)


def test_earliest_stop_wins() -> None:
    assert feed_all(("b", "a"), ["xyab"]) == ("xy", True)


def test_empty_stop_is_ignored() -> None:
    assert feed_all(("",), ["abc"]) == ("abc", False)
