"""`aethel-lsp check FILE|DIR...`: the editor's Aethel diagnostics on the command line.

Prints `file:line:col: severity: message [code]` (1-based, like compilers, so editors
and CI annotate them) or, with `--json`, one JSON array of findings.  Exit status 1
when any file has an error (or cannot be read), else 0: usable as a CI gate.  What the
solver could not decide is "not proven": a warning and a summary line by default, an
error (exit 1) with `--strict`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aethel_lsp.language.check_options import CheckOptions
from aethel_lsp.language.checker import analyze
from aethel_lsp.language.diagnostics import Severity

if TYPE_CHECKING:
    from aethel_lsp.cli.context import CliContext


def run_check(
    paths: Sequence[str],
    json_output: bool,
    *,
    options: CheckOptions | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Check each file; print findings; return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    failed = False
    not_proven: dict[str, int] = {}
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
        analysis = analyze(text, options=options)
        if analysis.not_proven:
            not_proven[path] = analysis.not_proven
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
    elif not_proven:
        print(not_proven_summary(not_proven, strict=bool(options and options.strict)), file=out)
    return 1 if failed else 0


def not_proven_summary(counts: dict[str, int], *, strict: bool) -> str:
    """The last line when something was not decided: it must not read like a pass."""
    total = sum(counts.values())
    files = len(counts)
    what = (
        f"not proven: {total} check{'s' if total != 1 else ''} in {files} "
        f"file{'s' if files != 1 else ''} could not be decided (solver-unknown, "
        "solver-budget or unsupported above)"
    )
    if strict:
        return f"{what}; they fail the check (--strict)"
    return f"{what}; they do not fail the check unless --strict is given"


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
    defaults = CheckOptions()
    options = CheckOptions(
        timeout_ms=int(args.timeout_ms or defaults.timeout_ms),
        intent_budget_ms=int(args.intent_budget_ms or defaults.intent_budget_ms),
        file_budget_ms=int(args.file_budget_ms or defaults.file_budget_ms),
        strict=bool(args.strict),
        verify_implied=bool(args.verify_implied),
        symbolic_overflow=bool(args.symbolic_overflow),
    )
    return run_check(args.files, bool(args.json), options=options)
