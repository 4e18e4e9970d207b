"""Benchmark: parse + syntax diagnostics of a 20,000-line Aethel file (issue 6: <= 150 ms).

Run: `.venv/bin/python bench/bench_aethel_parse.py [lines]`.  Prints best and median of
9 runs for the lexer alone and for `parse()` (lexer + parser + diagnostics), on a file
made of the transfer example repeated with distinct intent names.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aethel_lsp.language.lexer import tokenize
from aethel_lsp.language.parser import parse

EXAMPLE = Path(__file__).resolve().parent.parent / "tests/fixtures/aethel/examples/transfer.ae"


def build(lines: int) -> str:
    base = EXAMPLE.read_text(encoding="utf-8")
    parts: list[str] = []
    count = k = 0
    while count < lines:
        part = base.replace("intent transfer", f"intent transfer_{k}")
        parts.append(part)
        count += part.count("\n") + 1
        k += 1
    return "\n".join(parts)


def measure(label: str, fn: Callable[[str], object], text: str, runs: int = 9) -> None:
    """Best and median wall time, plus best CPU time (less sensitive to a busy machine).

    Results are kept alive until the end, so freeing a previous tree is not timed.
    """
    wall: list[float] = []
    cpu: list[float] = []
    keep: list[object] = []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        keep.append(fn(text))
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    print(
        f"{label:<28} best {min(wall):6.1f} ms   median {statistics.median(wall):6.1f} ms"
        f"   best cpu {min(cpu):6.1f} ms"
    )


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    text = build(lines)
    result = parse(text)
    print(
        f"{text.count(chr(10)) + 1} lines, {len(text)} chars, "
        f"{len(result.program.intents())} intents, {len(result.diagnostics)} diagnostics"
    )
    measure("tokenize", tokenize, text)
    measure("parse + syntax diagnostics", parse, text)


if __name__ == "__main__":
    main()
