"""Findings about Aethel text, independent of LSP (the features layer converts them)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from aethel_lsp.language.spans import Position, Range, Span

__all__ = ["Diagnostic", "Fix", "Position", "Range", "Severity", "make"]


class Severity(IntEnum):
    """Same numbering as LSP's DiagnosticSeverity, so conversion is a plain cast."""

    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Fix:
    """A mechanical correction: replace `range` by `new_text` (a quick fix for editors)."""

    title: str
    range: Range
    new_text: str


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, how bad, what to do, and a stable `code` (`syntax`, `overflow`...)."""

    range: Range
    severity: Severity
    message: str
    code: str
    source: str = "aethel"
    fix: Fix | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "range": {
                "start": {"line": self.range.start.line, "column": self.range.start.column},
                "end": {"line": self.range.end.line, "column": self.range.end.column},
            },
            "severity": self.severity.label,
            "message": self.message,
            "code": self.code,
            **(
                {"fix": {"title": self.fix.title, "newText": self.fix.new_text}} if self.fix else {}
            ),
        }


def make(span: Span, message: str, code: str, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(span.range, severity, message, code)
