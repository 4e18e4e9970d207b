"""Shared helpers for the Aethel unit tests (fixture paths, diagnostic rendering)."""

from __future__ import annotations

from pathlib import Path

from aethel_lsp.language.diagnostics import Diagnostic

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "aethel"
EXAMPLES = FIXTURES / "examples"
UPSTREAM = FIXTURES / "upstream"
DRIFT = (
    "crop_insurance_web.ae",
    "weather_insurance.ae",
    "defi_liquidation_conservation.ae",
    "payroll.ae",
)
CONFORMING = tuple(sorted(p.name for p in UPSTREAM.glob("*.ae") if p.name not in DRIFT))
ALL_PROGRAMS = tuple(sorted(FIXTURES.glob("*/*.ae")))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def where(d: Diagnostic) -> tuple[int, int, int, int]:
    """1-based (line, col, end line, end col), as an editor shows it."""
    r = d.range
    return (r.start.line + 1, r.start.column + 1, r.end.line + 1, r.end.column + 1)
