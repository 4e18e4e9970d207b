"""The Aethel language: lexer, error-tolerant parser, formatter, z3 checker, symbols.

Pure Python: nothing here imports pygls, lsprotocol or httpx, so the same code serves
the language server, the `aethel-lsp check` command and verified generation.
"""

from __future__ import annotations

from aethel_lsp.language.diagnostics import Diagnostic, Position, Range, Severity
from aethel_lsp.language.parser import ParseResult, parse

__all__ = ["Diagnostic", "ParseResult", "Position", "Range", "Severity", "parse"]
