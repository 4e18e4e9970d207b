"""The typed-through cache: suggestions kept with the text around the cursor that made them,
so typing the start of a shown suggestion is served with no engine request."""

from __future__ import annotations

from dataclasses import dataclass

ANCHOR_CHARS = 256  # how much text around the cursor identifies a prompt
MAX_TYPED_THROUGH = 400  # longer typed-through distances are not worth matching

# --- anchors and the typed-through cache ---------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """Identifies "the document around the cursor" cheaply: the prefix length, its last
    characters and the first characters after the cursor."""

    prefix_len: int
    prefix_tail: str
    suffix_head: str

    @classmethod
    def of(cls, text: str, offset: int) -> Anchor:
        return cls(
            offset,
            text[max(0, offset - ANCHOR_CHARS) : offset],
            text[offset : offset + ANCHOR_CHARS],
        )

    def typed_since(self, text: str, offset: int) -> str | None:
        """What was typed at the cursor since this anchor, or None if the document
        differs in another way (cursor moved back, text after the cursor changed...)."""
        typed_len = offset - self.prefix_len
        if typed_len < 0 or typed_len > MAX_TYPED_THROUGH:
            return None
        start = self.prefix_len - len(self.prefix_tail)
        if text[start : self.prefix_len] != self.prefix_tail:
            return None
        if text[offset : offset + len(self.suffix_head)] != self.suffix_head:
            return None
        return text[self.prefix_len : offset]


@dataclass(frozen=True)
class CacheEntry:
    uri: str
    model: str
    anchor: Anchor
    text: str  # the cleaned suggestion as shown at the anchor


class CompletionCache:
    """An LRU of suggestions, looked up by "has the user typed the start of one?".

    Entries live in a plain list, newest last: a lookup scans at most `capacity` of them
    (comparing a few hundred characters each), which is cheaper than any index here.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._entries: list[CacheEntry] = []
        self.capacity = capacity
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: CacheEntry) -> None:
        if not entry.text:
            return
        self._entries = [
            e
            for e in self._entries
            if not (e.uri == entry.uri and e.model == entry.model and e.anchor == entry.anchor)
        ]
        self._entries.append(entry)
        del self._entries[: -self.capacity]

    def lookup(self, uri: str, model: str, text: str, offset: int) -> str | None:
        """The rest of a cached suggestion the user is typing through, if any."""
        entries = self._entries
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            if entry.uri != uri or entry.model != model:
                continue
            typed = entry.anchor.typed_since(text, offset)
            if typed is None or not entry.text.startswith(typed):
                continue
            rest = entry.text[len(typed) :]
            if not rest.strip():
                continue  # fully accepted: ask for a new suggestion
            entries.append(entries.pop(index))  # most recently used last
            self.hits += 1
            return rest
        self.misses += 1
        return None

    def forget(self, uri: str) -> None:
        self._entries = [e for e in self._entries if e.uri != uri]
