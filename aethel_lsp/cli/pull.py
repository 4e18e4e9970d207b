"""`aethel-lsp pull` progress, and the embedded engine's model fetched on first use.

Shared by `pull`, `generate` and `demo`, so it lives apart from the subcommand table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aethel_lsp.cli.context import CliContext
    from aethel_lsp.engine import PullProgress


async def show_pull(ctx: CliContext, progress: AsyncIterator[PullProgress]) -> None:
    """Pull progress as NDJSON with --json, else as progress bars on stderr."""
    from aethel_lsp.cli.output import PullDisplay

    if ctx.args.json:
        async for item in progress:
            ctx.out.json_line(item.to_json())
        return
    with PullDisplay(ctx.out) as display:
        async for item in progress:
            display.update(item)


async def fetch_embedded_model_if_needed(ctx: CliContext) -> None:
    """Like `ollama run`: the first `demo`/`generate` on the embedded engine fetches its
    default model, with progress, when no other model is there to serve."""
    config = ctx.engine_config()
    if config.kind not in ("auto", "embedded") or config.embedded_model_path:
        return
    from aethel_lsp.engine.embedded import default_model_path, ollama_store_models
    from aethel_lsp.engine.llama_server import xllamacpp_installed
    from aethel_lsp.engine.model_fetch import DEFAULT_MODEL, fetch_model

    if not xllamacpp_installed() or default_model_path() is not None or ollama_store_models():
        return
    if config.kind == "auto" and (await ctx.engine.status()).available:
        return  # Ollama serves
    ctx.out.note(f"The embedded engine has no model yet: fetching {DEFAULT_MODEL.name} "
                 f"({DEFAULT_MODEL.size // 1_000_000} MB) once.")
    if ctx.args.json:  # stdout carries the command's own JSON
        async for _ in fetch_model():
            pass
        return
    await show_pull(ctx, fetch_model())
