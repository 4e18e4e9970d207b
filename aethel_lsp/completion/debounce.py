"""Adaptive debounce: automatic requests wait with the user's typing rhythm, so a burst of
keystrokes costs no upstream request; and how long the engine keeps a model loaded."""

from __future__ import annotations

# --- adaptive debounce ----------------------------------------------------------------


class TypingRhythm:
    """Per-lane estimate of the time between keystrokes (an exponential average).

    The debounce is 1.5x that interval, clamped to the configured bounds: long enough
    that the next keystroke of a burst usually arrives first, short enough that a
    slow typist is not kept waiting.  A pause longer than `reset_s` forgets the rhythm.
    """

    def __init__(self, reset_s: float = 1.0) -> None:
        self._last: float | None = None
        self._ema: float | None = None
        self._reset_s = reset_s

    def note(self, now: float) -> None:
        if self._last is not None:
            gap = now - self._last
            if gap > self._reset_s:
                self._ema = None
            else:
                self._ema = gap if self._ema is None else 0.5 * self._ema + 0.5 * gap
        self._last = now

    def debounce_s(self, min_ms: int, max_ms: int) -> float:
        low, high = min(min_ms, max_ms) / 1000.0, max(min_ms, max_ms) / 1000.0
        if self._ema is None:
            return (low + high) / 2.0
        return max(low, min(high, 1.5 * self._ema))
