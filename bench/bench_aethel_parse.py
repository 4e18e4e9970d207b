"""Benchmark: parse + syntax diagnostics of a 20,000-line Aethel file (issue 6: <= 150 ms).

Run: `.venv/bin/python bench/bench_aethel_parse.py [lines]`.  Prints best and median of
9 runs for the lexer alone, for `parse()` (lexer + parser + diagnostics), and for the
server's incremental parser (`IncrementalParser`, what `didOpen`/`didChange` use): a
first parse, and a one-character insertion or deletion in the middle (syntax
diagnostics; then with the tree built, as the first feature request after an edit
does: half the intents moved and are copied), on a file made of the
transfer example repeated with distinct intent names.  Prints the load average too.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aethel_lsp.language.incremental import IncrementalParser
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
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    measure("tokenize", tokenize, text)
    measure("parse + syntax diagnostics", parse, text)
    measure("incremental: first parse", lambda t: IncrementalParser().parse(t), text)

    # typing in the middle: one character in, then out again, so that every parse is
    # an edit and the second half of the file moves each time
    middle = text.index("intent", len(text) // 2)
    versions = [text[: middle + 40] + "x" + text[middle + 40 :], text]
    parser = IncrementalParser()
    parser.parse(text)
    turn = iter(range(1_000))

    def edit(_: str) -> object:
        return parser.parse(versions[next(turn) % 2])

    def edit_and_tree(_: str) -> object:
        return parser.parse(versions[next(turn) % 2]).program

    measure("incremental: 1-char edit", edit, text)
    measure("incremental: edit + tree", edit_and_tree, text)


if __name__ == "__main__":
    main()
