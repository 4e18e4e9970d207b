"""`aethel-lsp demo`: the earlier engine's four demo scenarios, without pauses.

1. basic inference (one whole answer), 2. streaming (tokens as they come),
3. model management (status, models, loaded models, recommendations),
4. Aethel code generation (prompt -> code -> checked by our own parser).
Every number shown comes from the engine (see `Metrics`); nothing is estimated.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from aethel_lsp.cli.output import metrics_line, models_table, running_table, status_summary
from aethel_lsp.engine import (
    ChatMessage,
    ChatRequest,
    Chunk,
    EngineOffline,
    GenerateRequest,
    GenerationOptions,
    closing_stream,
    collect,
)
from aethel_lsp.engine.errors import LoadedModelsUnknown
from aethel_lsp.engine.recommend import (
    SMALL_CODE_MODEL,
    install_advice,
    pick_model,
    recommend_all,
)

if TYPE_CHECKING:
    from aethel_lsp.cli.context import CliContext
    from aethel_lsp.engine.base import Engine
    from aethel_lsp.engine.types import RunningModel

BASIC_PROMPT = "In one sentence: what is a smart contract?"
# Token budgets keep the demo quick on a CPU-only machine (the embedded engine).
BASIC_TOKENS = 64
STREAM_TOKENS = 96
AETHEL_TOKENS = 400
STREAM_PROMPT = "Write three short lines about running language models locally."
AETHEL_TASK = "move an amount between two accounts without changing the total supply"


async def run_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.pull import fetch_embedded_model_if_needed

    out = ctx.out
    await fetch_embedded_model_if_needed(ctx)
    engine = ctx.engine
    status = await engine.status()
    if not status.available:
        raise EngineOffline(
            status.error
            or f"No engine answers at {status.host}; start Ollama with `ollama serve`.",
            host=status.host,
        )
    if not out.json_mode:  # say first which engine answers, and why (auto may fall back)
        out.note(status_summary(status))
        if status.reason and status.engine != "ollama":
            out.note(status.reason)
    models = await engine.list_models_detailed()
    recommendations = recommend_all(models, engine.kind)
    # The model the language server would use, so the demo shows what the editor gets.
    general = coder = args.model or ctx.settings.model or pick_model(models, "chat")
    if not general or not coder:
        from aethel_lsp.cli.context import CliError

        raise CliError("No model that can generate text is installed; install one: "
                       f"{install_advice(engine.kind, SMALL_CODE_MODEL)}.")
    report: dict[str, Any] = {}

    # 1. Basic inference
    _heading(ctx, "1. Basic inference", f"{general}: {BASIC_PROMPT}")
    basic = await engine.generate(
        GenerateRequest(general, BASIC_PROMPT, options=GenerationOptions(num_predict=BASIC_TOKENS))
    )
    report["basicInference"] = basic.to_json()
    if not out.json_mode:
        out.line(basic.text.strip())
        out.note(metrics_line(basic.metrics))

    # 2. Streaming
    _heading(ctx, "2. Streaming", f"{general}: {STREAM_PROMPT}")
    stream = engine.stream_generate(
        GenerateRequest(
            general, STREAM_PROMPT, options=GenerationOptions(num_predict=STREAM_TOKENS)
        )
    )
    async with contextlib.aclosing(_echo(ctx, stream)) as chunks:
        streamed = await collect(chunks, general)
    report["streaming"] = streamed.to_json()
    if not out.json_mode:
        out.write_text("\n")
        out.note(metrics_line(streamed.metrics))

    # 3. Model management
    _heading(ctx, "3. Model management", "status, installed and loaded models, recommendations")
    running, loaded_unknown = await _loaded(engine)
    report["modelManagement"] = {
        "status": status.to_json(),
        "models": [m.to_json() for m in models],
        "running": [r.to_json() for r in running],
        "recommendations": [r.to_json() for r in recommendations],
    }
    if not out.json_mode:
        out.line(status_summary(status))
        out.table(models_table(models))
        if running:
            out.table(running_table(running))
        elif loaded_unknown:
            out.note(loaded_unknown)
        for r in recommendations:
            out.line(f"{r.use_case}: {r.model or '–'} — {r.reason}")

    # 4. Aethel code generation
    _heading(ctx, "4. Aethel code generation", f"{coder}: {AETHEL_TASK}")
    report["aethelGeneration"] = await _aethel(ctx, coder)

    if out.json_mode:
        out.json(report)
    return 0


async def _aethel(ctx: CliContext, model: str) -> dict[str, Any]:
    from aethel_lsp.language import parse
    from aethel_lsp.prompts.actions import extract_code, generate_contract

    prompt = generate_contract(AETHEL_TASK)
    request = ChatRequest(
        model,
        (ChatMessage("system", prompt.system), ChatMessage("user", prompt.user)),
        options=GenerationOptions(temperature=0.2, num_predict=AETHEL_TOKENS),
    )
    result = await ctx.engine.chat(request)
    code = extract_code(result.text)
    parsed = parse(code)
    problems = [
        f"{d.range.start.line + 1}:{d.range.start.column + 1} {d.message}"
        for d in parsed.diagnostics
    ]
    if not ctx.out.json_mode:
        ctx.out.line(code)
        verdict = "parses cleanly" if parsed.ok else f"has {len(problems)} problem(s)"
        ctx.out.note(f"the generated contract {verdict} · {metrics_line(result.metrics)}")
        for problem in problems:
            ctx.out.note(f"  {problem}")
        if problems:
            ctx.out.note(
                "Small models often fail here. In the editor, *Generate Aethel contract* "
                "feeds these diagnostics back to the model for repair rounds; for real "
                "use, run a code model: "
                f"{install_advice(ctx.engine.kind, SMALL_CODE_MODEL)}."
            )
    return {**result.to_json(), "code": code, "valid": parsed.ok, "problems": problems}


async def _loaded(engine: Engine) -> tuple[list[RunningModel], str]:
    """The loaded models, or none and why that is not known (some OpenAI-compatible
    servers list what they can serve, not what is in memory)."""
    try:
        return await engine.running(), ""
    except LoadedModelsUnknown as exc:
        return [], str(exc)


def _heading(ctx: CliContext, title: str, detail: str) -> None:
    if not ctx.out.json_mode:
        ctx.out.line("")
        ctx.out.markup(f"[bold]{title}[/bold]")
        ctx.out.note(detail)


async def _echo(ctx: CliContext, chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
    async with contextlib.aclosing(closing_stream(chunks)) as items:
        async for chunk in items:
            if chunk.text and not ctx.out.json_mode:
                ctx.out.write_text(chunk.text)
            yield chunk
