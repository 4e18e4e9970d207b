"""One answer of the distiller: which model wrote it, what the checker said, its score."""

from __future__ import annotations

from dataclasses import dataclass, field

from aethel_lsp.engine.types import JsonDict, Metrics
from aethel_lsp.language import Diagnostic, Severity


@dataclass(frozen=True)
class Candidate:
    """A contract as it left its last repair round, with the checker's verdict.

    `index` is the order in which the candidate was asked for (ties keep it); `error` is
    set when the engine failed before any text came (the candidate is then invalid).
    """

    index: int
    model: str
    provider: str
    text: str
    diagnostics: tuple[Diagnostic, ...]
    attempts: int
    metrics: Metrics | None = None
    cost_usd: float | None = None
    error: str | None = None
    score: float = 0.0
    reason: str = ""
    canonical: str | None = field(default=None, compare=False)  # formatted, for agreement

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == Severity.WARNING)

    @property
    def valid(self) -> bool:
        """Parses and passes every check (warnings allowed)."""
        return self.error is None and bool(self.text.strip()) and not self.errors

    @property
    def label(self) -> str:
        return f"#{self.index + 1} ({self.model})"

    def to_json(self) -> JsonDict:
        """The pinned shape `C` of `aethel.distillContract` and `aethel-lsp distill --json`."""
        return {
            "model": self.model,
            "provider": self.provider,
            "text": self.text,
            "valid": self.valid,
            "score": self.score,
            "diagnostics": [d.to_json() for d in self.diagnostics],
            "reason": self.reason,
            "costUsd": self.cost_usd,
            "metrics": self.metrics.to_json() if self.metrics is not None else None,
        }
