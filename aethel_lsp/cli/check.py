"""`aethel-lsp check FILE|DIR...`: the editor's Aethel diagnostics on the command line.

Prints `file:line:col: severity: message [code]` (1-based, like compilers, so editors
and CI annotate them) or, with `--json`, one JSON array of findings.  Exit status 1
when any file has an error (or cannot be read), else 0: usable as a CI gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aethel_lsp.language.checker import DEFAULT_TIMEOUT_MS, analyze
from aethel_lsp.language.diagnostics import Severity

if TYPE_CHECKING:
    from aethel_lsp.cli.context import CliContext


def run_check(
    paths: Sequence[str],
    json_output: bool,
    *,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Check each file; print findings; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    failed = False
    records: list[dict[str, object]] = []
    files = expand_paths(paths)
    if not files:
        # In CI a mistyped path must not pass silently.
        print(f"error: no .ae files found in {', '.join(paths) or 'the arguments'}", file=err)
        return 1
    for path in files:
        try:
            with open(path, encoding="utf-8-sig") as handle:  # tolerate a BOM
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {path}: {exc}", file=err)
            failed = True
            continue
        analysis = analyze(text, timeout_ms=timeout_ms)
        if analysis.omitted:
            failed = True  # only errors are ever omitted
        for diag in analysis.diagnostics:
            if diag.severity == Severity.ERROR:
                failed = True
            start, end = diag.range.start, diag.range.end
            if json_output:
                records.append(
                    {
                        "file": path,
                        "line": start.line + 1,
                        "column": start.column + 1,
                        "endLine": end.line + 1,
                        "endColumn": end.column + 1,
                        "severity": diag.severity.label,
                        "code": diag.code,
                        "message": diag.message,
                    }
                )
            else:
                print(
                    f"{path}:{start.line + 1}:{start.column + 1}: {diag.severity.label}: "
                    f"{diag.message} [{diag.code}]",
                    file=out,
                )
        if analysis.omitted and not json_output:
            print(
                f"{path}: ... and {analysis.omitted} more syntax errors (only the first "
                f"{len(analysis.parse.diagnostics)} are listed; is this an Aethel file?)",
                file=out,
            )
    if json_output:
        print(json.dumps(records, indent=2, ensure_ascii=False), file=out)
    return 1 if failed else 0


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Files as given; a directory stands for every `.ae` file below it (sorted)."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(str(p) for p in sorted(Path(path).rglob("*.ae")) if p.is_file())
        else:
            out.append(path)
    return out


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    """Adapter for the `aethel-lsp` subcommand table (see cli.py)."""
    del ctx  # no engine needed
    timeout = args.timeout_ms if args.timeout_ms else DEFAULT_TIMEOUT_MS
    return run_check(args.files, bool(args.json), timeout_ms=int(timeout))
