"""Benchmark: the embedded engine's inline completion, keypress -> suggestion (issue 15).

Run from the repository root (needs the `embedded` extra and `aethel-lsp pull`):

    .venv/bin/python -m bench.bench_embedded            # ~1 minute on 2 cores
    .venv/bin/python -m bench.bench_embedded --json bench/results_embedded.json

A Python file of about 800 SmolLM2 tokens is open; the user types 20 characters at its
end, and after each one asks for an inline completion (Invoked: no debounce) of at most
16 tokens. Two measurements, one after the other (never at the same time, 2 cores):

* the real server process over stdio (pytest-lsp's client, `engine = "embedded"`): time
  from sending the request to receiving its answer, for the first request (cold: model
  load + reading the whole prefix) and for each keystroke;
* the floor: the same prompt (the text before the cursor) and the same options sent with
  httpx straight to llama.cpp's server (xllamacpp, same context, threads and slots),
  with llama.cpp's own `timings` (cached tokens, prompt and generation milliseconds).

The server's prompt has a few more tokens than the floor's (a path comment before the
code); both reuse the cached prefix, so that difference costs about a millisecond.
"""

# mypy: disable-error-code="untyped-decorator,no-untyped-call"
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from lsprotocol import types

from aethel_lsp.engine.embedded import automatic_threads, default_model_path
from aethel_lsp.engine.llama_server import ServerSettings, start_server
from tests.e2e.lsp_harness import Harness
from tests.e2e.lsp_harness import start_server as start_lsp

TYPED = "    total = a * b + 1"[:20]
MAX_TOKENS = 16
# Below this, the answer came from the typed-through cache (the user typed what was
# suggested): a llama.cpp round trip for 16 tokens takes 250 ms or more on 2 cores.
UPSTREAM_MS = 50.0
TEMPERATURE = 0.1
FUNCTION = '''def {name}(values: list[int], factor: int = {k}) -> list[int]:
    """Scale every value by {k} and drop the negative ones ({name})."""
    result: list[int] = []
    for value in values:
        if value * factor >= 0:
            result.append(value * factor)
    return result


'''


@dataclass
class Series:
    cold_ms: float = 0.0
    keys_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def pct(self, q: float, *, upstream_only: bool = False) -> float:
        values = [ms for ms in self.keys_ms if ms >= UPSTREAM_MS] if upstream_only else []
        ordered = sorted(values or self.keys_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def upstream_count(self) -> int:
        return sum(ms >= UPSTREAM_MS for ms in self.keys_ms)


def build_prefix(tokenize: Any, target: int = 800) -> tuple[str, int]:
    parts: list[str] = []
    count = 0
    while count < target:
        parts.append(FUNCTION.format(name=f"scale_{len(parts)}", k=len(parts) + 2))
        count = tokenize("".join(parts))
    return "".join(parts) + "def combine(a: int, b: int) -> int:\n", count


async def floor(model: Path, prefix_tokens: int) -> tuple[Series, str, int]:
    settings = ServerSettings(model, 4096, automatic_threads(), 2)
    server = await asyncio.to_thread(start_server, settings)
    series = Series()
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=120,
                                 trust_env=False) as http:
        def count(text: str) -> int:
            reply = httpx.post(f"{server.base_url}/tokenize", json={"content": text},
                               headers=headers, trust_env=False)
            return len(reply.json()["tokens"])

        prefix, tokens = await asyncio.to_thread(build_prefix, count, prefix_tokens)

        async def one(prompt: str) -> tuple[float, dict[str, Any]]:
            body = {"prompt": prompt, "n_predict": MAX_TOKENS, "temperature": TEMPERATURE,
                    "cache_prompt": True}
            begin = time.perf_counter()
            reply = await http.post("/completion", json=body)
            elapsed = (time.perf_counter() - begin) * 1000.0
            return elapsed, reply.json()["timings"]

        series.cold_ms, timings = await one(prefix)
        series.notes.append(f"cold: {timings}")
        for i in range(1, len(TYPED) + 1):
            ms, timings = await one(prefix + TYPED[:i])
            series.keys_ms.append(ms)
            series.notes.append(f"key {i}: {ms:.0f} ms, cache_n {timings['cache_n']}, "
                                f"prompt_ms {timings['prompt_ms']:.0f}, "
                                f"predicted_n {timings['predicted_n']}")
    await asyncio.to_thread(server.stop)
    return series, prefix, tokens


async def through_server(model: Path, prefix: str) -> Series:
    series = Series()
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as scratch:
        lsp: Harness = await start_lsp(
            Path(scratch), None,
            editor_settings={"engine": "embedded", "completion": {
                "maxTokens": MAX_TOKENS, "temperature": TEMPERATURE, "deadlineMs": 60000,
                "otherDocuments": False}},
            extra_env={"AETHEL_LSP_MODELS_DIR": str(model.parent)},
        )
        try:
            uri = lsp.open("typing.py", prefix)
            series.cold_ms, answer = await ask(lsp, uri, prefix)
            series.notes.append(f"cold answer: {answer!r}")
            for i in range(1, len(TYPED) + 1):
                text = prefix + TYPED[:i]
                lsp.client.text_document_did_change(types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=i + 1),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
                ms, answer = await ask(lsp, uri, text)
                series.keys_ms.append(ms)
                series.notes.append(f"key {i}: {ms:.0f} ms {answer!r}")
        finally:
            await lsp.stop()
    return series


async def ask(lsp: Harness, uri: str, text: str) -> tuple[float, str]:
    lines = text.split("\n")
    position = types.Position(line=len(lines) - 1, character=len(lines[-1]))
    begin = time.perf_counter()
    result = await asyncio.wait_for(lsp.client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked))), 120)
    elapsed = (time.perf_counter() - begin) * 1000.0
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    return elapsed, str(items[0].insert_text) if items else ""


async def main_async(args: argparse.Namespace) -> int:
    model = default_model_path()
    if model is None:
        print("No embedded model: run `aethel-lsp pull` first.", file=sys.stderr)
        return 1
    base, prefix, tokens = await floor(model, args.prefix_tokens)
    served = await through_server(model, prefix)
    upstream = served.upstream_count()
    rows = [
        ("keypress -> suggestion p50", served.pct(0.5), base.pct(0.5)),
        ("keypress -> suggestion p90", served.pct(0.9), base.pct(0.9)),
        (f"  of which via llama.cpp ({upstream}) p50", served.pct(0.5, upstream_only=True),
         base.pct(0.5)),
        (f"  of which via llama.cpp ({upstream}) p90", served.pct(0.9, upstream_only=True),
         base.pct(0.9)),
        ("cold first suggestion", served.cold_ms, base.cold_ms),
    ]
    print(f"prefix {tokens} tokens, {len(TYPED)} keystrokes, {MAX_TOKENS} tokens each, "
          f"load average {os.getloadavg()[0]:.2f}")
    for label, measured, bound in rows:
        print(f"{label:32s} {measured:8.0f} ms   floor {bound:8.0f} ms   "
              f"ratio {measured / bound:.2f}x")
    if args.verbose:
        print("\n".join(["server:", *served.notes, "floor:", *base.notes]))
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps({
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "prefixTokens": tokens, "loadAverage": os.getloadavg(),
            "server": asdict(served), "floor": asdict(base),
        }, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefix-tokens", type=int, default=800)
    parser.add_argument("--json", default="")
    parser.add_argument("--verbose", "-v", action="store_true")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
