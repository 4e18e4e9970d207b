"""What the scheduler is asked and what it answers: settings, requests, outcomes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aethel_lsp.engine.types import KeepAlive, Metrics
from aethel_lsp.prompts.context import (
    OpenDocument,
)
from aethel_lsp.prompts.fim import (
    FimMode,
)


@dataclass(frozen=True)
class SchedulerSettings:
    """The completion settings the scheduler needs (built from `config.Settings`)."""

    model: str
    max_tokens: int = 64
    deadline_ms: int = 1500
    debounce_min_ms: int = 30
    debounce_max_ms: int = 200
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    other_documents: bool = True
    temperature: float = 0.1
    keep_alive: KeepAlive = "30m"
    num_ctx: int | None = None


@dataclass(frozen=True)
class InlineRequest:
    """One request for text at `offset` (code points into `text`)."""

    uri: str
    language_id: str
    text: str
    offset: int
    invoked: bool = False  # explicitly asked for: no debounce
    lane: str = "inline"  # latest-wins scope within a document
    documents: Callable[[], Sequence[OpenDocument]] | None = None


class Source(str, enum.Enum):
    CACHE = "cache"  # typed-through hit: no engine request
    REUSED = "reused"  # adopted a running stream
    FRESH = "fresh"  # a new engine request
    SUPERSEDED = "superseded"  # a newer request for the document arrived
    EMPTY = "empty"  # nothing to offer (no model, nothing generated)
    ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    text: str
    source: Source
    elapsed_ms: float = 0.0
    mode: FimMode | None = None
    partial: bool = False  # cut at the deadline
    message: str = ""
    metrics: Metrics | None = None


SUPERSEDED = Outcome("", Source.SUPERSEDED)
