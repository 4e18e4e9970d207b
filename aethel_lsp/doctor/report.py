"""What the doctor found: `Finding`s (area, severity, title, detail, fix) and the
`DoctorReport` that the CLI and the server render as JSON, Markdown or terminal lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from aethel_lsp.engine.measure import ProbeMeasurement
from aethel_lsp.engine.types import JsonDict

Severity = Literal["ok", "info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info", "ok")
AREAS = ("config", "engine", "models", "completion", "speed", "residency")
_ICONS = {"ok": "✓", "info": "ℹ", "warning": "⚠", "error": "✗"}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what was checked, how bad it is, why, and what to do."""

    area: str
    severity: Severity
    title: str
    detail: str = ""
    fix: str = ""
    data: JsonDict = field(default_factory=dict)  # the numbers behind it, for scripts

    def to_json(self) -> JsonDict:
        return {
            "area": self.area,
            "severity": self.severity,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
            "data": self.data,
        }


@dataclass(frozen=True)
class DoctorReport:
    """Every finding, plus the context a bug report needs."""

    findings: tuple[Finding, ...]
    engine: JsonDict
    settings: JsonDict  # key -> {"value", "source"}
    config_files: tuple[str, ...]
    probes: tuple[ProbeMeasurement, ...] = ()
    elapsed_ms: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def summary(self) -> str:
        """One line: the counts, then the first problem."""
        counts = self.counts()
        parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}"
                 for s in ("error", "warning") if counts[s]]
        head = ", ".join(parts) if parts else "no problems found"
        worst = next((f for s in ("error", "warning") for f in self.findings
                      if f.severity == s), None)
        return f"aethel-lsp doctor: {head}" + (f" — {worst.title}" if worst else "")

    def to_json(self) -> JsonDict:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
            "engine": self.engine,
            "settings": self.settings,
            "configFiles": list(self.config_files),
            "probes": [p.to_json() for p in self.probes],
            "elapsedMs": round(self.elapsed_ms, 1),
        }

    def by_area(self) -> list[tuple[str, list[Finding]]]:
        """The findings of each area that has any, in `AREAS` order, worst first."""
        grouped = []
        for area in AREAS:
            found = [f for f in self.findings if f.area == area]
            if found:
                grouped.append((area, sorted(found, key=lambda f: SEVERITIES.index(f.severity))))
        return grouped

    def to_markdown(self) -> str:
        """The report as a document for the editor (and for bug reports)."""
        lines = ["# aethel-lsp doctor", "", f"**{self.summary()}**", ""]
        for area, found in self.by_area():
            lines += [f"## {area.capitalize()}", ""]
            for f in found:
                lines.append(f"- {_ICONS[f.severity]} **{f.severity.upper()}** — {f.title}")
                if f.detail:
                    lines.append(f"  - {f.detail}")
                if f.fix:
                    lines.append(f"  - **Fix:** {f.fix}")
            lines.append("")
        changed = {k: v for k, v in self.settings.items() if v.get("source") != "default"}
        if changed:
            lines += ["## Settings that differ from the defaults", "",
                      "| setting | value | from |", "|---|---|---|"]
            lines += [f"| `{k}` | `{v['value']!r}` | {v['source']} |" for k, v in changed.items()]
            lines.append("")
        lines.append(f"_{time.strftime('%Y-%m-%d %H:%M:%S')} · {self.elapsed_ms / 1000:.1f} s_")
        return "\n".join(lines) + "\n"

    def to_lines(self) -> list[str]:
        """The report for a terminal: worst first within each area."""
        out: list[str] = []
        for area, found in self.by_area():
            for f in found:
                out.append(f"{_ICONS[f.severity]} [{area}] {f.title}")
                if f.detail:
                    out.append(f"    {f.detail}")
                if f.fix:
                    out.append(f"    fix: {f.fix}")
        out.append("")
        out.append(self.summary())
        return out
